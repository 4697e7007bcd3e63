//! Flags of the public edge that concern browsers.

use clap::Args;
use evault_gateway::Cors;

use crate::outcome::{Failure, usage};

/// Which other origins' web pages may call the vault.
#[derive(Args, Debug, Clone)]
pub(crate) struct WebArgs {
    /// An origin whose pages may call the API from a browser (CORS), e.g.
    /// `https://app.example.com`; repeat for more. None by default: the
    /// UI served at `/` is same-origin and needs none.
    #[arg(
        long = "cors-origin",
        env = "EVAULT_CORS_ORIGIN",
        value_delimiter = ','
    )]
    cors_origin: Vec<String>,
}

impl WebArgs {
    pub(crate) fn cors(&self) -> Result<Cors, Failure> {
        Cors::allow(&self.cors_origin).map_err(usage)
    }
}
