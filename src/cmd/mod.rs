//! One module per subcommand.

pub mod calibration;
pub mod decode;
pub mod encode;
pub mod eval;
pub mod inspect;
pub mod verify;
