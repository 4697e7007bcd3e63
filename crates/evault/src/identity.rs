//! Who may call: the flags every role that faces callers shares, the local
//! issuer `evault up` runs when no identity provider is named, and
//! `evault token`, which mints tokens from that issuer.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use evault_auth::{AuthLayer, JwksSource, JwtConfig, JwtVerifier, LocalIssuer, Policy, Scope};
use evault_ingest::RateLimit;

use crate::outcome::{Failure, Outcome, usage};

/// How long the development token `evault up` writes stays valid. It is
/// minted again at every start, so a vault in daily use never sees it
/// expire, and a copied one stops working within a month.
const DEV_TOKEN_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// Identity and access: where keys come from, whose tokens count, what
/// stays public, and how fast each principal may append.
#[derive(Args, Debug, Clone)]
pub(crate) struct AuthArgs {
    /// The identity provider's JWKS, as a file (re-read every 5 minutes
    /// and whenever a token names an unknown key).
    #[arg(long, env = "EVAULT_JWKS_FILE", conflicts_with = "jwks_url")]
    jwks_file: Option<PathBuf>,
    /// The identity provider's JWKS URL (refreshed as its Cache-Control
    /// says, else every 5 minutes, and whenever a token names an unknown
    /// key).
    #[arg(long, env = "EVAULT_JWKS_URL")]
    jwks_url: Option<String>,
    /// The `iss` every token must carry (required with a JWKS).
    #[arg(long, env = "EVAULT_JWT_ISSUER")]
    jwt_issuer: Option<String>,
    /// The audience every token's `aud` must contain (required with a
    /// JWKS).
    #[arg(long, env = "EVAULT_JWT_AUDIENCE")]
    jwt_audience: Option<String>,
    /// Whether reads (checkpoints, proofs, entries, tiles) need no token.
    /// With false, they need the evault.read scope.
    #[arg(
        long,
        env = "EVAULT_PUBLIC_READS",
        default_value_t = true,
        action = clap::ArgAction::Set,
        value_name = "BOOL"
    )]
    public_reads: bool,
    /// Appends per second each principal may make, sustained (off unless
    /// set). Over it, a call is answered RESOURCE_EXHAUSTED with
    /// grpc-retry-pushback-ms and a stream is held back.
    #[arg(long, env = "EVAULT_RATE_PER_PRINCIPAL", value_name = "N")]
    rate_per_principal: Option<f64>,
    /// Appends a principal may make at once after being idle (with
    /// --rate-per-principal; default: one second's worth).
    #[arg(
        long,
        env = "EVAULT_BURST",
        value_name = "M",
        requires = "rate_per_principal"
    )]
    burst: Option<u32>,
}

impl AuthArgs {
    /// The identity provider named by the flags, if any.
    fn provider(&self) -> Result<Option<JwtConfig>, Failure> {
        let source = match (&self.jwks_file, &self.jwks_url) {
            (Some(file), _) => JwksSource::File(file.clone()),
            (None, Some(url)) => JwksSource::Url(url.clone()),
            (None, None) => {
                if self.jwt_issuer.is_some() || self.jwt_audience.is_some() {
                    return Err(usage(
                        "--jwt-issuer and --jwt-audience need --jwks-file or --jwks-url",
                    ));
                }
                return Ok(None);
            }
        };
        let issuer = self
            .jwt_issuer
            .clone()
            .ok_or_else(|| usage("--jwt-issuer is required with a JWKS"))?;
        let audience = self
            .jwt_audience
            .clone()
            .ok_or_else(|| usage("--jwt-audience is required with a JWKS"))?;
        Ok(Some(JwtConfig {
            source,
            issuer,
            audience,
        }))
    }

    /// The authentication layer for a role that has no data directory of
    /// its own: an identity provider is required.
    pub(crate) async fn layer(&self) -> Result<AuthLayer, Failure> {
        let config = self.provider()?.ok_or_else(|| {
            usage("name the identity provider: --jwks-file or --jwks-url, with --jwt-issuer and --jwt-audience")
        })?;
        self.layer_for(config).await
    }

    /// The authentication layer for `evault up`: the identity provider
    /// named by the flags or, without one, the local issuer in `data_dir`,
    /// which also writes DATA_DIR/dev-token.
    pub(crate) async fn layer_or_local(&self, data_dir: &Path) -> Result<Local, Failure> {
        if let Some(config) = self.provider()? {
            return Ok(Local {
                layer: self.layer_for(config).await?,
                dev_token: None,
            });
        }
        let issuer = LocalIssuer::open_or_create(data_dir).map_err(usage)?;
        let token = issuer
            .mint("dev", &Scope::ALL, DEV_TOKEN_TTL)
            .map_err(usage)?;
        let dev_token = data_dir.join("dev-token");
        crate::vault::write_file(&dev_token, &format!("{token}\n"), false)?;
        Ok(Local {
            layer: self.layer_for(LocalIssuer::config(data_dir)).await?,
            dev_token: Some(dev_token),
        })
    }

    async fn layer_for(&self, config: JwtConfig) -> Result<AuthLayer, Failure> {
        let verifier: Arc<JwtVerifier> = JwtVerifier::start(config)
            .await
            .map_err(|e| usage(format!("identity provider: {e}")))?;
        Ok(AuthLayer::new(verifier, Policy::new(self.public_reads)))
    }

    /// Each principal's append rate, when limited.
    pub(crate) fn rate_limit(&self) -> Result<Option<RateLimit>, Failure> {
        self.rate_per_principal
            .map(|rate| {
                let burst = self.burst.unwrap_or_else(|| rate.ceil().max(1.0) as u32);
                RateLimit::new(rate, burst).map_err(|e| usage(format!("--rate-per-principal: {e}")))
            })
            .transpose()
    }
}

/// `grpc` behind `auth`: every route answers to the same policy, and a
/// caller is refused from its headers before any of its message is read.
pub(crate) fn guarded(grpc: tonic::service::Routes, auth: &AuthLayer) -> tonic::service::Routes {
    tonic::service::Routes::from(grpc.into_axum_router().layer(auth.clone()))
}

/// What `evault up` authenticates with.
pub(crate) struct Local {
    pub(crate) layer: AuthLayer,
    /// DATA_DIR/dev-token, when the local issuer wrote it.
    pub(crate) dev_token: Option<PathBuf>,
}

/// Mint a token from the local issuer of a data directory, for local
/// multi-user work and tests. Prints the token on standard output.
///
/// The first use creates the issuer (DATA_DIR/issuer-key and the public
/// DATA_DIR/jwks.json) if `evault up` has not; roles started with
/// `--jwks-file DATA_DIR/jwks.json --jwt-issuer evault-local
/// --jwt-audience evault` accept its tokens.
#[derive(Args, Debug)]
pub(crate) struct TokenArgs {
    /// The data directory whose issuer signs.
    #[arg(long, env = "EVAULT_DATA_DIR", default_value = "evault-data")]
    data_dir: PathBuf,
    /// The principal: the token's `sub`, recorded in every entry it
    /// appends.
    #[arg(long)]
    sub: String,
    /// Space-separated scopes: evault.append, evault.read, evault.admin.
    #[arg(long, default_value = "evault.append evault.read")]
    scope: String,
    /// How long the token is valid: 90s, 15m, 12h, 30d.
    #[arg(long, default_value = "1h", value_parser = evault_auth::parse_ttl)]
    ttl: Duration,
}

pub(crate) fn token(args: TokenArgs) -> Outcome {
    if args.sub.trim().is_empty() {
        return Err(usage("--sub: name the principal"));
    }
    let scopes = args
        .scope
        .split_whitespace()
        .map(|s| {
            s.parse::<Scope>().map_err(|_| {
                usage(format!(
                    "--scope: unknown scope {s:?} (evault.append, evault.read, evault.admin)"
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if scopes.is_empty() {
        return Err(usage("--scope: name at least one scope"));
    }
    std::fs::create_dir_all(&args.data_dir)
        .map_err(|e| usage(format!("--data-dir {}: {e}", args.data_dir.display())))?;
    let issuer = LocalIssuer::open_or_create(&args.data_dir).map_err(usage)?;
    let token = issuer.mint(&args.sub, &scopes, args.ttl).map_err(usage)?;
    println!("{token}");
    Ok(())
}
