//! One module per subcommand.

pub mod decode;
pub mod encode;
pub mod inspect;
pub mod verify;
