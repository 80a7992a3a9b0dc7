//! Flags shared by every command (registry access, limits, logging), and how they become a
//! registry client.

use std::io::Read as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context as _};
use signet_oci::registry::Credentials;
use signet_oci::{ImageLocation, RegistryClient, RegistryOptions};

/// Largest password accepted on stdin.
const MAX_PASSWORD_BYTES: u64 = 64 * 1024;
pub use crate::logsink::LogGuard;

/// How a command prints its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// Lines for people.
    Text,
    /// One JSON document.
    Json,
}

/// How log lines on stderr look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Flags every command accepts (before or after the command name).
#[derive(Debug, Clone, clap::Args)]
pub struct GlobalOptions {
    /// Reach this registry (HOST[:PORT]) over plain HTTP; loopback hosts always may. Repeatable.
    #[arg(long = "allow-http-registry", value_name = "HOST", global = true)]
    pub allow_http_registry: Vec<String>,
    /// Trust the PEM CA certificates in FILE for registry TLS, besides the system's trust store
    /// (`SSL_CERT_FILE`, `SSL_CERT_DIR` honoured) and the bundled web roots. Repeatable.
    #[arg(long = "ca-file", value_name = "FILE", global = true)]
    pub ca_file: Vec<PathBuf>,
    /// Connect to ADDR for registry host HOST instead of asking DNS (like `curl --resolve`; TLS
    /// is still checked against HOST). Repeatable.
    #[arg(long = "resolve", value_name = "HOST=ADDR", global = true, value_parser = parse_resolve)]
    pub resolve: Vec<(String, std::net::IpAddr)>,
    /// User name for the image's registry (with --registry-password-stdin).
    #[arg(
        long,
        value_name = "USER",
        global = true,
        requires = "registry_password_stdin"
    )]
    pub registry_username: Option<String>,
    /// Read the password for the image's registry from stdin (with --registry-username).
    #[arg(long, global = true, requires = "registry_username")]
    pub registry_password_stdin: bool,
    /// Largest manifest accepted, in bytes.
    #[arg(long, value_name = "BYTES", global = true, default_value_t = signet_oci::manifest::DEFAULT_MAX_MANIFEST_BYTES,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub max_manifest_bytes: u64,
    /// Registry time-out for connecting and for each request, in seconds.
    #[arg(long, value_name = "SECS", global = true, default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub timeout: u64,
    /// Print only what is essential (no progress, no summary on success).
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Format of log lines on stderr.
    #[arg(
        long,
        value_enum,
        value_name = "FORMAT",
        global = true,
        default_value = "text"
    )]
    pub log_format: LogFormat,
    /// More log output (-v info, -vv debug, -vvv trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// When to colour output: `auto` colours a terminal unless `NO_COLOR` is set (to anything
    /// but empty); `always` and `never` override both.
    #[arg(
        long,
        value_enum,
        value_name = "WHEN",
        global = true,
        default_value = "auto"
    )]
    pub color: ColorWhen,
}

/// `--color`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorWhen {
    /// Colour when writing to a terminal and `NO_COLOR` is unset.
    Auto,
    /// Always colour.
    Always,
    /// Never colour.
    Never,
}

/// Arguments that name a file to read and take `-` for stdin, by command: keys, bundles,
/// predicates and trust material. Not policies or gate configs (paths inside them are relative
/// to their own folder, which stdin has not), not outputs, not directories.
pub const STDIN_FILE_ARGS: &[(&str, &[&str])] = &[
    (
        "verify",
        &["key", "trusted_root", "ca_roots", "ca_intermediates"],
    ),
    ("verify-blob", &["bundle", "key", "trusted_root"]),
    ("verify-attestation", &["key"]),
    ("attest", &["key", "predicate"]),
    ("sign", &["key"]),
    ("public-key", &["key"]),
    ("import-key-pair", &["key"]),
];

/// Largest input read from stdin for a `-` file argument.
const MAX_STDIN_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// Stdin saved to a private file (0600, removed when dropped) for a `-` file argument.
pub struct StdinFile {
    path: PathBuf,
}

impl Drop for StdinFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// When `matches` give `-` to one of [`STDIN_FILE_ARGS`], read stdin into a private file and
/// return `args` with that `-` replaced by its path (the caller parses them again). Only one
/// input can come from stdin, and not when `--registry-password-stdin` reads it.
pub fn stdin_file_args(
    matches: &clap::ArgMatches,
    mut args: Vec<std::ffi::OsString>,
) -> anyhow::Result<Option<(Vec<std::ffi::OsString>, StdinFile)>> {
    let Some((command, sub)) = matches.subcommand() else {
        return Ok(None);
    };
    let Some((_, ids)) = STDIN_FILE_ARGS.iter().find(|(c, _)| *c == command) else {
        return Ok(None);
    };
    let dashed: Vec<&str> = ids
        .iter()
        .copied()
        .filter(|id| {
            sub.try_get_raw(id)
                .ok()
                .flatten()
                .is_some_and(|mut v| v.any(|v| v == "-"))
        })
        .collect();
    let Some(id) = dashed.first() else {
        return Ok(None);
    };
    let flag = id.replace('_', "-");
    // The argv elements that are this `-`: `--flag -` or `--flag=-`.
    let at: Vec<usize> = (1..args.len())
        .filter(|&i| {
            let a = args[i].to_string_lossy();
            a == format!("--{flag}=-") || (a == "-" && args[i - 1] == *format!("--{flag}"))
        })
        .collect();
    let all_dashes = args
        .iter()
        .skip(1)
        .filter(|a| *a == "-" || a.to_string_lossy().ends_with("=-"))
        .count();
    if dashed.len() > 1 || at.len() != 1 || all_dashes != 1 {
        bail!("only one input can be read from stdin (`-`)");
    }
    if matches.get_flag("registry_password_stdin") {
        bail!("--{flag} -: stdin is already read by --registry-password-stdin");
    }
    let mut bytes = Vec::new();
    std::io::stdin()
        .take(MAX_STDIN_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("--{flag} -: reading stdin"))?;
    if bytes.len() as u64 > MAX_STDIN_FILE_BYTES {
        bail!("--{flag} -: stdin holds more than {MAX_STDIN_FILE_BYTES} bytes");
    }
    let file = write_private_temp(&bytes).with_context(|| format!("--{flag} -: saving stdin"))?;
    let i = at[0];
    args[i] = if args[i] == "-" {
        file.path.clone().into_os_string()
    } else {
        format!("--{flag}={}", file.path.display()).into()
    };
    Ok(Some((args, file)))
}

/// A new file only this user can read, holding `bytes`.
fn write_private_temp(bytes: &[u8]) -> std::io::Result<StdinFile> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let path = std::env::temp_dir().join(format!("signet-stdin-{}-{nanos:09}", std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)?;
    let guard = StdinFile { path };
    file.write_all(bytes)?;
    file.sync_all()?;
    Ok(guard)
}

/// The colour choice the command line asks for (the last `--color`), or `NO_COLOR`'s when it
/// does not: looked up before clap parses, so clap's own help and errors follow it too.
pub fn color_choice(
    args: &[std::ffi::OsString],
    no_color: Option<&std::ffi::OsStr>,
) -> clap::ColorChoice {
    let mut asked = None;
    let mut iter = args.iter().skip(1).map(|a| a.to_string_lossy());
    while let Some(arg) = iter.next() {
        if arg == "--" {
            break;
        }
        let value = match arg.strip_prefix("--color") {
            Some("") => iter.next().map(|v| v.into_owned()),
            Some(rest) => rest.strip_prefix('=').map(str::to_string),
            None => None,
        };
        match value.as_deref() {
            Some("always") => asked = Some(clap::ColorChoice::Always),
            Some("never") => asked = Some(clap::ColorChoice::Never),
            Some("auto") => asked = Some(clap::ColorChoice::Auto),
            _ => {}
        }
    }
    asked.unwrap_or(if no_color.is_some_and(|v| !v.is_empty()) {
        clap::ColorChoice::Never
    } else {
        clap::ColorChoice::Auto
    })
}

impl GlobalOptions {
    /// Send log output to stderr at the level -v asks for (`SIGNET_LOG` overrides, as an
    /// `EnvFilter` directive).
    /// `quiet_level` is the level without -v (`warn` for one-shot commands, `info` for the
    /// gate, whose decision lines are its audit log).
    ///
    /// With `background` (the gate), decision lines are queued and written out in batches
    /// (`logsink.rs`); the returned guard writes out the queue when dropped: keep it until the
    /// command has finished.
    pub fn init_logging(&self, quiet_level: &str, background: bool) -> Option<LogGuard> {
        let level = match self.verbose {
            0 => quiet_level,
            1 => "info",
            2 => "debug",
            _ => "trace",
        };
        let filter = tracing_subscriber::EnvFilter::try_from_env("SIGNET_LOG")
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
        let ansi = self.colored_stderr();
        if background {
            let (sink, guard) = crate::logsink::LogSink::new(
                std::io::stderr(),
                crate::logsink::FLUSH_INTERVAL,
                crate::logsink::MAX_QUEUED_BYTES,
            );
            self.install_logging(filter, sink, ansi);
            return Some(guard);
        }
        self.install_logging(filter, std::io::stderr, ansi);
        None
    }

    /// The global subscriber: `filter`, writing to `writer` in the `--log-format`.
    fn install_logging<W>(&self, filter: tracing_subscriber::EnvFilter, writer: W, ansi: bool)
    where
        W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
    {
        let builder = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(writer)
            .with_ansi(ansi);
        let _ = match self.log_format {
            LogFormat::Text => builder
                .event_format(crate::logfmt::PlainLines::default())
                .try_init(),
            LogFormat::Json => builder.json().try_init(),
        };
    }

    /// Whether stderr gets ANSI colours (`--color`, `NO_COLOR`, whether it is a terminal).
    pub fn colored_stderr(&self) -> bool {
        match self.color {
            ColorWhen::Always => true,
            ColorWhen::Never => false,
            ColorWhen::Auto => {
                std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                    && std::io::IsTerminal::is_terminal(&std::io::stderr())
            }
        }
    }

    /// Registry options from the flags; explicit credentials, if given, are for `registry_host`
    /// (the registry of the image the command works on) and are read from stdin here.
    pub fn registry_options(&self, registry_host: Option<&str>) -> anyhow::Result<RegistryOptions> {
        let mut credentials = Vec::new();
        if let Some(username) = &self.registry_username {
            let Some(host) = registry_host else {
                bail!("--registry-username applies only to images in a registry");
            };
            let mut password = String::new();
            std::io::stdin()
                .take(MAX_PASSWORD_BYTES)
                .read_to_string(&mut password)
                .context("reading the registry password from stdin")?;
            let password = password.trim_end_matches(['\r', '\n']).to_string();
            if password.is_empty() {
                bail!("--registry-password-stdin: stdin held no password");
            }
            credentials.push((
                host.to_string(),
                Credentials {
                    username: username.clone(),
                    password,
                },
            ));
        }
        Ok(RegistryOptions {
            allow_http_registries: self.allow_http_registry.clone(),
            ca_files: self.ca_file.clone(),
            resolve: self.resolve.clone(),
            credentials,
            max_manifest_bytes: self.max_manifest_bytes,
            timeout: Duration::from_secs(self.timeout),
            ..RegistryOptions::default()
        })
    }

    /// A registry client for a command working on `location`.
    pub fn registry_client(&self, location: &ImageLocation) -> anyhow::Result<RegistryClient> {
        let host = match location {
            ImageLocation::Registry(reference) => Some(reference.registry()),
            _ => None,
        };
        Ok(RegistryClient::new(self.registry_options(host)?)?)
    }
}

/// `HOST=ADDR` of `--resolve`.
fn parse_resolve(text: &str) -> Result<(String, std::net::IpAddr), String> {
    let (host, addr) = text
        .split_once('=')
        .ok_or_else(|| "expected HOST=ADDR".to_string())?;
    if host.is_empty() || host.contains([':', '/', ' ']) {
        return Err(format!("{host:?} is not a host name (no port)"));
    }
    let addr = addr
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .map_err(|_| format!("{addr:?} is not an IP address"))?;
    Ok((host.to_ascii_lowercase(), addr))
}

/// Parse an image argument (`HOST/REPO[:TAG][@DIGEST]`, `oci:DIR[:TAG]`, `docker-archive:FILE`).
pub fn parse_image(text: &str) -> anyhow::Result<ImageLocation> {
    Ok(text.parse::<ImageLocation>()?)
}
