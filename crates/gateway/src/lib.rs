//! The vault's **gateway** role: the public edge.
//!
//! Gateway serves native gRPC and gRPC-web on one port, forwarding
//! `IngestService` and `TreeService` calls, and the C2SP tlog-tiles HTTP
//! read API (paths as [`evault_core::TilePath`] parses them), health and
//! metrics.
//!
//! This crate reserves the role's place in the workspace; the server is
//! not built yet, so the crate exports nothing. It will never write to the
//! log's storage or hold a key.
