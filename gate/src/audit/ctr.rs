//! containerd through `ctr --address SOCK -n NS …` (containerd's own client) rather than its
//! gRPC API: speaking gRPC would add a tonic/prost stack to the build for three list calls. The
//! output is bounded (bytes, lines, time; `ctr` is killed at the time limit) and parsed strictly:
//! the header must name the columns expected, every row must parse (a digest that is not a
//! digest is an error, not a skipped row).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;

use tokio::io::AsyncReadExt;

use super::{
    registry_reference, EngineImage, EngineKind, Scope, ENGINE_TIMEOUT, MAX_ANSWER_BYTES,
    MAX_ENTRIES,
};
use crate::GateError;

fn fail(socket: &Path, what: &str) -> GateError {
    GateError::Engine(format!("containerd at {}: {what}", socket.display()))
}

/// Run `ctr --address socket args…`; its stdout, bounded.
async fn ctr(socket: &Path, args: &[&str]) -> Result<String, GateError> {
    let mut child = tokio::process::Command::new("ctr")
        .arg("--address")
        .arg(socket)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| fail(socket, &format!("cannot run ctr: {e}")))?;
    let mut stdout = child
        .stdout
        .take()
        .ok_or_else(|| fail(socket, "ctr has no stdout"))?;
    let mut stderr = child
        .stderr
        .take()
        .ok_or_else(|| fail(socket, "ctr has no stderr"))?;
    let run = async {
        let mut out = Vec::new();
        let mut err = Vec::new();
        let limit = MAX_ANSWER_BYTES as u64 + 1;
        let mut stdout = (&mut stdout).take(limit);
        let mut stderr = (&mut stderr).take(4096);
        let (read_out, _) =
            tokio::join!(stdout.read_to_end(&mut out), stderr.read_to_end(&mut err),);
        read_out.map_err(|e| fail(socket, &format!("reading ctr's output: {e}")))?;
        if out.len() > MAX_ANSWER_BYTES {
            return Err(fail(
                socket,
                &format!("ctr's output exceeds {MAX_ANSWER_BYTES} bytes"),
            ));
        }
        let status = child
            .wait()
            .await
            .map_err(|e| fail(socket, &format!("ctr: {e}")))?;
        if !status.success() {
            let said = String::from_utf8_lossy(&err);
            let said = said.lines().last().unwrap_or_default();
            return Err(fail(
                socket,
                &format!(
                    "ctr {} failed: {}",
                    args.join(" "),
                    crate::one_line(said.trim(), 300)
                ),
            ));
        }
        String::from_utf8(out).map_err(|_| fail(socket, "ctr's output is not UTF-8"))
    };
    match tokio::time::timeout(ENGINE_TIMEOUT, run).await {
        Ok(result) => result,
        Err(_) => Err(fail(
            socket,
            &format!(
                "ctr {} gave no answer within {} s",
                args.join(" "),
                ENGINE_TIMEOUT.as_secs()
            ),
        )),
    }
}

/// The rows of a table `ctr` printed under a header starting with `columns`: each row's first
/// `columns.len()` whitespace-separated fields.
fn table(socket: &Path, text: &str, columns: &[&str]) -> Result<Vec<Vec<String>>, GateError> {
    let mut lines = text.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    if header.len() < columns.len() || header[..columns.len()] != *columns {
        return Err(fail(
            socket,
            &format!(
                "ctr's table does not start with the columns {}",
                columns.join(" ")
            ),
        ));
    }
    let mut rows = Vec::new();
    for line in lines.filter(|l| !l.trim().is_empty()) {
        if rows.len() >= MAX_ENTRIES {
            return Err(fail(
                socket,
                &format!("more than {MAX_ENTRIES} rows from ctr"),
            ));
        }
        let fields: Vec<String> = line
            .split_whitespace()
            .take(columns.len())
            .map(str::to_string)
            .collect();
        if fields.len() < columns.len() {
            return Err(fail(socket, "a row of ctr's table has too few columns"));
        }
        rows.push(fields);
    }
    Ok(rows)
}

fn valid_namespace(ns: &str) -> bool {
    !ns.is_empty()
        && ns.len() <= 76
        && ns
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// The images containerd at `socket` uses, in `namespace` (or every namespace).
pub(super) async fn list(
    socket: &Path,
    namespace: Option<&str>,
    scope: Scope,
) -> Result<Vec<EngineImage>, GateError> {
    // ctr waits for a socket that is not there; say so at once instead.
    match std::fs::metadata(socket) {
        Ok(_) => {}
        Err(e) => return Err(fail(socket, &format!("cannot use the socket: {e}"))),
    }
    let namespaces: Vec<String> = match namespace {
        Some(ns) => vec![ns.to_string()],
        None => {
            let text = ctr(socket, &["namespaces", "ls", "-q"]).await?;
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(|l| {
                    if valid_namespace(l) {
                        Ok(l.to_string())
                    } else {
                        Err(fail(socket, "ctr named a namespace that is not a name"))
                    }
                })
                .collect::<Result<_, _>>()?
        }
    };
    let mut out = Vec::new();
    for ns in namespaces {
        if !valid_namespace(&ns) {
            return Err(fail(socket, &format!("{ns:?} is not a namespace name")));
        }
        out.extend(list_namespace(socket, &ns, scope).await?);
        if out.len() > MAX_ENTRIES {
            return Err(fail(socket, &format!("more than {MAX_ENTRIES} images")));
        }
    }
    Ok(out)
}

async fn list_namespace(
    socket: &Path,
    ns: &str,
    scope: Scope,
) -> Result<Vec<EngineImage>, GateError> {
    let images = ctr(socket, &["-n", ns, "images", "ls"]).await?;
    let mut digests: BTreeMap<String, String> = BTreeMap::new();
    for row in table(socket, &images, &["REF", "TYPE", "DIGEST"])? {
        if row[2].parse::<signet_oci::Digest>().is_err() {
            return Err(fail(
                socket,
                "ctr listed an image whose digest is not a digest",
            ));
        }
        digests.insert(row[0].clone(), row[2].clone());
    }
    let mut used: BTreeMap<String, Vec<String>> = BTreeMap::new();
    match scope {
        Scope::Containers => {
            let containers = ctr(socket, &["-n", ns, "containers", "ls"]).await?;
            for row in table(socket, &containers, &["CONTAINER", "IMAGE", "RUNTIME"])? {
                if row[1] == "-" {
                    continue; // a container on a plain rootfs: no image
                }
                used.entry(row[1].clone()).or_default().push(row[0].clone());
            }
        }
        Scope::Stored => {
            for name in digests.keys() {
                used.entry(name.clone()).or_default();
            }
        }
    }
    Ok(used
        .into_iter()
        .map(|(name, containers)| {
            let reference = digests.get(&name).and_then(|digest| {
                // The name as recorded, without its tag, at the digest containerd holds.
                let repository = name.split('@').next().unwrap_or(&name);
                let repository = signet_oci::Reference::parse_as_written(repository)
                    .ok()?
                    .without_tag_or_digest();
                registry_reference(&format!("{}@{digest}", repository.name()))
            });
            EngineImage {
                engine: EngineKind::Containerd,
                namespace: Some(ns.to_string()),
                containers,
                name,
                image_id: None,
                reference,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn tables_are_parsed_strictly() {
        let socket = Path::new("/x.sock");
        let d = format!("sha256:{}", "ab".repeat(32));
        let text = format!(
            "REF                          TYPE                                    DIGEST  SIZE    PLATFORMS LABELS\n\
             127.0.0.1:5000/app:v1 application/vnd.oci.image.manifest.v1+json {d} 2.3 KiB linux/amd64 -\n"
        );
        let rows = table(socket, &text, &["REF", "TYPE", "DIGEST"]).unwrap();
        assert_eq!(
            rows,
            vec![vec![
                "127.0.0.1:5000/app:v1".to_string(),
                "application/vnd.oci.image.manifest.v1+json".into(),
                d
            ]]
        );
        let err = table(socket, "garbage\nmore", &["REF", "TYPE", "DIGEST"]).unwrap_err();
        assert!(
            err.to_string()
                .contains("does not start with the columns REF TYPE DIGEST"),
            "{err}"
        );
        let err = table(
            socket,
            "REF TYPE DIGEST\nonly-one\n",
            &["REF", "TYPE", "DIGEST"],
        )
        .unwrap_err();
        assert!(err.to_string().contains("too few columns"), "{err}");
        assert!(valid_namespace("k8s.io") && !valid_namespace("a b") && !valid_namespace(""));
    }
}
