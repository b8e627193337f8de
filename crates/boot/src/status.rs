//! esx-boot's status codes (`include/error.h`), numbered as the loader
//! prints them in "Fatal error: `<code> (<text>)`" and in
//! "failed to overwrite /boot.cfg: `<code>` (ignored)".

use serde::Serialize;

/// An esx-boot status: its number and its text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct EsxStatus {
    /// The number (position in esx-boot's error table).
    pub code: u32,
    /// The text, e.g. "Not found".
    pub text: &'static str,
}

impl std::fmt::Display for EsxStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.code, self.text)
    }
}

macro_rules! statuses {
    ($($name:ident = $code:literal, $text:literal;)*) => {
        $(
            #[doc = concat!("`ERR_", stringify!($name), "` (", stringify!($code), "): ", $text)]
            pub const $name: EsxStatus = EsxStatus { code: $code, text: $text };
        )*
    };
}

statuses! {
    UNKNOWN = 1, "Unknown";
    LOAD_ERROR = 2, "Load error";
    INVALID_PARAMETER = 3, "Invalid parameter";
    UNSUPPORTED = 4, "Unsupported";
    BUFFER_TOO_SMALL = 6, "Buffer too small";
    DEVICE_ERROR = 8, "Device error";
    WRITE_PROTECTED = 9, "Write protected";
    OUT_OF_RESOURCES = 10, "Out of resources";
    VOLUME_CORRUPTED = 11, "Volume corrupted";
    NOT_FOUND = 15, "Not found";
    ABORTED = 22, "Aborted";
    CRC_ERROR = 28, "CRC error";
    SYNTAX = 32, "Syntax";
    INCONSISTENT_DATA = 33, "Inconsistent data";
    UNEXPECTED_EOF = 34, "Unexpected EOF";
    BAD_TYPE = 36, "Bad type";
    BAD_HEADER = 37, "Bad header";
}
