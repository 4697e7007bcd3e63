//! The vault's **tree** role: the log itself.
//!
//! Tree sequences batches of entries (dedup, contiguous indices),
//! integrates them into tiles with [`evault_core::Integrator`], asks signer
//! for the checkpoint and stores everything in one transaction; it serves
//! checkpoints, proofs, entries and tiles from storage, never by loading the
//! tree into memory. One active sequencer per log, enforced by the database.
//!
//! This crate reserves the role's place in the workspace; the services
//! (`SequencerService`, `TreeService` of `proto/evault/v1/`) are not built
//! yet, so the crate exports nothing. It will never hold a signing key.
