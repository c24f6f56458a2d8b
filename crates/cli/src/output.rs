//! Output helpers shared by the client commands.

use crate::Format;
use std::io::IsTerminal;

/// Table on a terminal, text otherwise.
pub fn default_format() -> Format {
    if std::io::stdout().is_terminal() {
        Format::Table
    } else {
        Format::Text
    }
}
