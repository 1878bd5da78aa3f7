//! The name of a parameter set on the wire: what the parameter table and the errors both
//! speak of.

use serde::{Deserialize, Serialize};

/// Identifies a row of the parameter table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ParamId(pub u16);

impl std::fmt::Display for ParamId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}
