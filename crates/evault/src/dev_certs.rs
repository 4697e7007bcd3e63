//! `evault dev-certs`: a CA and a certificate per role, for running the
//! roles as separate processes under mutual TLS on one machine.

use std::path::PathBuf;

use clap::Args;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};

use crate::outcome::{Outcome, usage};
use crate::vault::write_file;

/// The roles that get a certificate, each named after its role.
const ROLES: [&str; 4] = ["signer", "tree", "ingest", "gateway"];

/// The metrics scraper's certificate name: it reads `/metrics` on every
/// role and calls nothing ([`evault_proto::tls::SCRAPER`]).
const SCRAPER: &str = evault_proto::tls::SCRAPER;

/// Make a development CA, and a certificate and key for each role.
///
/// Writes to DIR: `ca.pem`, the CA's certificate (for --tls-ca); and for
/// each of signer, tree, ingest and gateway, `ROLE.pem` and `ROLE-key.pem`
/// (for --tls-cert and --tls-key). A role's certificate names the role,
/// `localhost` and the IP address 127.0.0.1, and is both its server and its
/// client certificate. `metrics.pem` and `metrics-key.pem` are a client
/// certificate for a Prometheus scraper, which may read `/metrics` on every
/// role and call nothing. Keys are readable by their owner only. The CA's
/// key is not kept: make a new set rather than adding to one.
///
/// Files from an earlier run are never overwritten unless --force is
/// given; then the whole set is replaced. For development only:
/// deployments use certificates from the organisation's CA (for example
/// through cert-manager; see docs/security.md).
#[derive(Args, Debug)]
pub(crate) struct DevCertsArgs {
    /// Directory to write to, created if missing.
    #[arg(long, env = "EVAULT_DEV_CERTS_OUT", value_name = "DIR")]
    out: PathBuf,
    /// Replace the files of an earlier run.
    #[arg(long, env = "EVAULT_DEV_CERTS_FORCE")]
    force: bool,
}

/// One file of the set.
struct Pem {
    name: String,
    text: String,
    /// Readable by others: certificates are, keys are not.
    public: bool,
}

/// A CA and each role's certificate and key, as PEM files.
fn generate() -> Result<Vec<Pem>, rcgen::Error> {
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::default();
    // A name of its own: a certificate from another set then names an
    // issuer no role knows (`unknown_ca`), instead of this CA's name over
    // a signature of another key.
    ca.distinguished_name = common_name(&format!(
        "evault development CA {:016x}",
        rand::random::<u64>()
    ));
    // It signs role certificates only, never another CA.
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let mut files = vec![Pem {
        name: "ca.pem".into(),
        text: ca.self_signed(&ca_key)?.pem(),
        public: true,
    }];
    let issuer = Issuer::new(ca, ca_key);
    for role in ROLES.into_iter().chain([SCRAPER]) {
        let key = KeyPair::generate()?;
        // Every role serves, and every role but signer calls another; the
        // scraper only calls.
        let (names, purposes) = if role == SCRAPER {
            (
                vec![role.to_string()],
                vec![ExtendedKeyUsagePurpose::ClientAuth],
            )
        } else {
            (
                vec![
                    role.to_string(),
                    "localhost".to_string(),
                    "127.0.0.1".to_string(),
                ],
                vec![
                    ExtendedKeyUsagePurpose::ServerAuth,
                    ExtendedKeyUsagePurpose::ClientAuth,
                ],
            )
        };
        let mut params = CertificateParams::new(names)?;
        params.distinguished_name = common_name(role);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = purposes;
        files.push(Pem {
            name: format!("{role}.pem"),
            text: params.signed_by(&key, &issuer)?.pem(),
            public: true,
        });
        files.push(Pem {
            name: format!("{role}-key.pem"),
            text: key.serialize_pem(),
            public: false,
        });
    }
    Ok(files)
}

fn common_name(name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    dn
}

pub(crate) fn run(args: DevCertsArgs) -> Outcome {
    let files = generate().map_err(|e| usage(format!("generating certificates: {e}")))?;
    std::fs::create_dir_all(&args.out)
        .map_err(|e| usage(format!("--out {}: {e}", args.out.display())))?;
    let existing: Vec<PathBuf> = files
        .iter()
        .map(|file| args.out.join(&file.name))
        .filter(|path| path.symlink_metadata().is_ok())
        .collect();
    if !args.force && !existing.is_empty() {
        let names: Vec<String> = existing.iter().map(|p| p.display().to_string()).collect();
        return Err(usage(format!(
            "{} already exist; --force replaces them",
            names.join(", ")
        )));
    }
    // Removed, not truncated: a key is created afresh, readable by its
    // owner only, whatever mode the old file had.
    for path in &existing {
        std::fs::remove_file(path).map_err(|e| usage(format!("{}: {e}", path.display())))?;
    }
    for file in &files {
        write_file(&args.out.join(&file.name), &file.text, file.public)?;
    }
    eprintln!(
        "wrote a development CA (ca.pem) and a certificate and key for {} and the {SCRAPER} scraper to {}",
        ROLES.join(", "),
        args.out.display()
    );
    Ok(())
}
