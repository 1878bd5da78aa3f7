//! Errors of the protocol layer: everything that can be wrong with bytes or numbers that
//! came from the other side.

use crate::param_id::ParamId;

/// A message or a parameter that cannot be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("unknown parameter id {0}: this build only knows the sets in its parameter table")]
    UnknownParameters(ParamId),
    #[error("unsupported wire format version {found} (this build speaks {expected})")]
    WireVersion { found: u16, expected: u16 },
    #[error("message is for parameter id {found}, expected {expected}")]
    ParameterMismatch { found: ParamId, expected: ParamId },
    #[error("message is for catalog {found:?}, expected {expected:?}")]
    CatalogMismatch { found: String, expected: String },
    #[error("message is for catalog version {found}, expected {expected}")]
    StaleVersion { found: String, expected: String },
    #[error("malformed message: {0}")]
    Malformed(String),
    #[error("{what} is {found}, expected {expected}")]
    WrongLength {
        what: &'static str,
        found: usize,
        expected: usize,
    },
    #[error("{what} = {value} is out of range ({allowed})")]
    OutOfRange {
        what: &'static str,
        value: u64,
        allowed: String,
    },
    #[error("digest mismatch: {0}")]
    DigestMismatch(&'static str),
    #[error("the noise budget cannot be met: {0}")]
    BudgetInfeasible(String),
}
