//! How a command ends when it does not succeed.

/// A command's failure, which decides the exit status.
#[derive(Debug)]
pub(crate) enum Failure {
    /// What was checked is invalid (exit 1).
    Invalid(String),
    /// The command could not run as asked (exit 2).
    Usage(String),
}

/// Result of a command.
pub(crate) type Outcome = Result<(), Failure>;

pub(crate) fn invalid(message: impl std::fmt::Display) -> Failure {
    Failure::Invalid(message.to_string())
}

pub(crate) fn usage(message: impl std::fmt::Display) -> Failure {
    Failure::Usage(message.to_string())
}
