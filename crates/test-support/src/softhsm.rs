//! A real PKCS#11 token for tests: SoftHSM2 with its own token directory,
//! keys made by OpenSC's `pkcs11-tool`, as an operator would make them.
//!
//! SoftHSM reads its configuration from `SOFTHSM2_CONF` when a process
//! first loads it, so a token is used from processes the test starts
//! ([`SoftHsm::configure`] sets the variable on their command), never from
//! the test process itself. A missing `softhsm2` or `opensc` fails the
//! test: `.ci/run` installs both.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The user PIN of every test token.
pub const PIN: &str = "1234";
const SO_PIN: &str = "5678";

/// A SoftHSM2 token in a directory of its own, deleted when dropped.
pub struct SoftHsm {
    dir: tempfile::TempDir,
    conf: PathBuf,
    /// The PKCS#11 module.
    pub module: PathBuf,
    /// The token's label.
    pub token: String,
    /// A file holding [`PIN`].
    pub pin_file: PathBuf,
}

/// Where Debian installs SoftHSM2's module.
fn module() -> PathBuf {
    let candidates = [
        "/usr/lib/softhsm/libsofthsm2.so",
        "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
        "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    ];
    candidates
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| {
            panic!("SoftHSM2's module is not installed (apt-get install softhsm2): looked in {candidates:?}")
        })
}

fn run(command: &mut Command, what: &str) -> Output {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("{what}: {e} (apt-get install softhsm2 opensc)"));
    assert!(
        out.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

impl SoftHsm {
    /// A new, initialised token labelled `token`, with user PIN [`PIN`].
    pub fn new(token: &str) -> SoftHsm {
        let dir = tempfile::tempdir().expect("tempdir");
        let tokens = dir.path().join("tokens");
        std::fs::create_dir(&tokens).expect("token directory");
        let conf = dir.path().join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                tokens.display()
            ),
        )
        .expect("softhsm2.conf");
        let pin_file = dir.path().join("pin");
        std::fs::write(&pin_file, format!("{PIN}\n")).expect("pin file");
        let hsm = SoftHsm {
            module: module(),
            conf,
            dir,
            token: token.to_string(),
            pin_file,
        };
        run(
            hsm.configure(&mut Command::new("softhsm2-util")).args([
                "--init-token",
                "--free",
                "--label",
                token,
                "--so-pin",
                SO_PIN,
                "--pin",
                PIN,
            ]),
            "softhsm2-util --init-token",
        );
        hsm
    }

    /// Points `command` at this token's configuration.
    pub fn configure<'c>(&self, command: &'c mut Command) -> &'c mut Command {
        command.env("SOFTHSM2_CONF", &self.conf)
    }

    /// The directory the token lives in.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn tool(&self) -> Command {
        let mut command = Command::new("pkcs11-tool");
        self.configure(&mut command).args([
            "--module".as_ref(),
            self.module.as_os_str(),
            "--token-label".as_ref(),
            self.token.as_ref(),
            "--login".as_ref(),
            "--pin".as_ref(),
            PIN.as_ref(),
        ]);
        command
    }

    /// Generates an Ed25519 key pair labelled `label` inside the token, as
    /// an operator would: the private key never exists outside it.
    pub fn generate_ed25519(&self, label: &str) {
        run(
            self.tool().args([
                "--keypairgen",
                "--key-type",
                "EC:edwards25519",
                "--label",
                label,
            ]),
            "pkcs11-tool --keypairgen",
        );
    }

    /// Generates an Ed25519 key pair whose private key the token would
    /// hand out (`CKA_EXTRACTABLE`): one the vault must refuse.
    pub fn generate_extractable_ed25519(&self, label: &str) {
        run(
            self.tool().args([
                "--keypairgen",
                "--key-type",
                "EC:edwards25519",
                "--extractable",
                "--label",
                label,
            ]),
            "pkcs11-tool --keypairgen --extractable",
        );
    }

    /// Tries to read the private key's value out of the token, as
    /// `pkcs11-tool --read-object` would: the bytes it printed, if any.
    pub fn read_private_key(&self, label: &str) -> Vec<u8> {
        self.tool()
            .args(["--read-object", "--type", "privkey", "--label", label])
            .output()
            .expect("pkcs11-tool --read-object")
            .stdout
    }

    /// What the token says of the private key labelled `label`: the
    /// `Access:` line of `pkcs11-tool --list-objects`, e.g. `sensitive,
    /// always sensitive, never extractable, local`.
    pub fn private_key_access(&self, label: &str) -> String {
        let out = run(
            self.tool()
                .args(["--list-objects", "--type", "privkey", "--label", label]),
            "pkcs11-tool --list-objects",
        );
        let listing = String::from_utf8_lossy(&out.stdout).into_owned();
        listing
            .lines()
            .map(str::trim)
            .find_map(|line| line.strip_prefix("Access:"))
            .map(|access| access.trim().to_string())
            .unwrap_or_else(|| panic!("no private key {label:?} listed:\n{listing}"))
    }

    /// The flags that make `evault up` or `evault serve signer` sign with
    /// the keys `labels` of this token.
    pub fn flags(&self, labels: &[&str]) -> Vec<String> {
        let mut flags = vec![
            "--pkcs11-module".to_string(),
            self.module.display().to_string(),
            "--pkcs11-token".to_string(),
            self.token.clone(),
            "--pkcs11-pin-file".to_string(),
            self.pin_file.display().to_string(),
        ];
        for label in labels {
            flags.push("--pkcs11-key".to_string());
            flags.push((*label).to_string());
        }
        flags
    }
}
