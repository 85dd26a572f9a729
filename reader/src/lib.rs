//! Zero-copy reader for hhtld files (in progress).
