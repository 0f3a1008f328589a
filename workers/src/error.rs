//! A job's failure as the workers see it: its kind (a label safe to show anywhere), whether
//! running it again can help, and the cause with its whole chain (for the log only: it may
//! quote SQL or values).

use crate::FailureKind;
use std::error::Error;
use std::fmt;

/// What caused a job's failure, kept whole so the log shows every link.
pub type Cause = Box<dyn Error + Send + Sync + 'static>;

/// How deep `Chain` follows causes: chains are short, and a cycle must not hang the log.
const MAX_CHAIN: usize = 16;

/// Why a job, or the job storage, failed.
#[derive(Debug, thiserror::Error)]
#[error("{context}")]
pub struct JobError {
    kind: FailureKind,
    retryable: bool,
    context: String,
    #[source]
    cause: Option<Cause>,
}

impl JobError {
    /// A failure with no cause to keep; a retry can help when its kind is transient.
    pub fn new(kind: FailureKind, message: impl Into<String>) -> JobError {
        JobError { kind, retryable: kind.is_transient(), context: message.into(), cause: None }
    }

    /// A failure caused by `cause`, which stays reachable as this error's `source`.
    pub fn caused_by(kind: FailureKind, retryable: bool, context: impl Into<String>, cause: impl Into<Cause>) -> JobError {
        JobError { kind, retryable, context: context.into(), cause: Some(cause.into()) }
    }

    pub fn kind(&self) -> FailureKind {
        self.kind
    }

    /// Whether running the job again can help (the database was unreachable or busy), or the
    /// failure stays until someone changes something (a bad program, bad data, a bug).
    pub fn retryable(&self) -> bool {
        self.retryable
    }

    /// The message and every cause under it, joined by ": ", for the log.
    pub fn chain(&self) -> Chain<'_> {
        Chain(self)
    }
}

/// An error and its causes, displayed on one line.
pub struct Chain<'a>(&'a (dyn Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        for _ in 0..MAX_CHAIN {
            let Some(link) = cause else { break };
            write!(f, ": {link}")?;
            cause = link.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_cause_chain_and_whether_a_retry_helps() {
        let io = std::io::Error::other("refused");
        let error = JobError::caused_by(FailureKind::DatabaseUnavailable, true, "ExpireLots failed", io);
        assert_eq!(error.to_string(), "ExpireLots failed");
        assert_eq!(error.chain().to_string(), "ExpireLots failed: refused");
        assert!(error.source().is_some() && error.retryable());
        let bad = JobError::new(FailureKind::Job, "a bad schedule");
        assert!(!bad.retryable() && bad.source().is_none());
        assert!(JobError::new(FailureKind::DatabaseBusy, "locked").retryable());
    }
}
