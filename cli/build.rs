//! Stamps the binary with the commit it was built from (`signet --version`): `SIGNET_COMMIT` if
//! set (packagers building from a tarball), else `git rev-parse` when the source is a git
//! checkout, else `unknown` (a clean copy without `.git` still builds).

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=SIGNET_COMMIT");
    let from_env = std::env::var("SIGNET_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty());
    let commit = from_env
        .or_else(git_commit)
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=SIGNET_COMMIT={commit}");
}

/// The checked-out commit (12 hex digits), re-read when HEAD or the branch it names moves.
fn git_commit() -> Option<String> {
    let git = |args: &[&str]| {
        let out = Command::new("git").args(args).output().ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
            .filter(|s| !s.is_empty())
    };
    let commit = git(&["rev-parse", "--short=12", "HEAD"])?;
    for path in ["HEAD", "packed-refs"] {
        if let Some(p) = git(&["rev-parse", "--git-path", path]) {
            println!("cargo:rerun-if-changed={}", absolute(&p));
        }
    }
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        if let Some(p) = git(&["rev-parse", "--git-path", &branch]) {
            println!("cargo:rerun-if-changed={}", absolute(&p));
        }
    }
    Some(commit)
}

/// git prints paths relative to the current directory (the crate's); cargo wants them whole.
fn absolute(path: &str) -> String {
    let p = std::path::Path::new(path);
    if p.is_absolute() {
        path.to_string()
    } else {
        std::env::current_dir()
            .map(|d| d.join(p).display().to_string())
            .unwrap_or_else(|_| path.to_string())
    }
}
