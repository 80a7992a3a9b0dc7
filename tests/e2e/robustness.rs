//! Robustness of the `signet` binary: concurrent signers lose no signature (registry and OCI
//! layout), processes killed at random points (and, for signers, aimed inside the write) leave
//! registries and layouts consistent, and no command ever prints a password or private key
//! material.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use signet_oci::manifest::OCI_MANIFEST;
use signet_oci::{Descriptor, Digest, Manifest, OciLayout};

use crate::support::{self, client, runtime, signet, TestRegistry};

const PASSWORD: &str = "robustness-pass-7f3a";
const SIGNERS: usize = 8;
const ROUNDS: usize = 20;
const KILLS: usize = 30;
/// A round slower than this prints its signers' debug lines.
const SLOW_ROUND: Duration = Duration::from_secs(8);
/// Seed of the kill-time RNG unless `SIGNET_ROBUSTNESS_SEED` overrides it (printed either way).
const DEFAULT_SEED: u64 = 0x5167_6e65_7420_6b31;

fn run(args: &[&str]) -> Output {
    signet()
        .env("SIGNET_PASSWORD", PASSWORD)
        .args(args)
        .output()
        .unwrap()
}

fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn ok(args: &[&str]) -> Output {
    let out = run(args);
    assert_eq!(code(&out), 0, "signet {args:?}: {}", text(&out));
    out
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Generate a key pair with the CLI; returns (private, public).
fn keypair(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let prefix = dir.join(name);
    ok(&["generate-key-pair", "--output-key-prefix", s(&prefix)]);
    (prefix.with_extension("key"), prefix.with_extension("pub"))
}

/// xorshift64*: deterministic kill times from a printed seed.
struct Rng(u64);

impl Rng {
    fn from_env(what: &str) -> Rng {
        let seed = std::env::var("SIGNET_ROBUSTNESS_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(DEFAULT_SEED);
        println!("{what}: RNG seed {seed} (set SIGNET_ROBUSTNESS_SEED to replay)");
        Rng(seed | 1)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1)
    }
}

/// The layers of the `.sig` manifest of `digest` in `repo` of `reg`, and that every blob it names
/// is present (a crash must never leave a manifest pointing at a missing blob).
fn registry_signature_layers(reg: &TestRegistry, repo: &str, digest: &Digest) -> Vec<Descriptor> {
    let reference = reg.reference(&format!("{repo}:{}", digest.signature_tag()));
    let c = client();
    runtime().block_on(async {
        let fetched = c.get_manifest(&reference).await.unwrap();
        let Manifest::Image(m) = fetched.manifest else {
            panic!("{reference} is not an image manifest");
        };
        for blob in std::iter::once(&m.config).chain(&m.layers) {
            c.get_blob_bytes(&reference, blob, 1 << 20).await.unwrap();
        }
        m.layers
    })
}

/// Put a fresh sample image into the layout at `dir` under `tag`; returns its digest.
fn layout_image(dir: &Path, tag: &str) -> Digest {
    let layout = OciLayout::create_or_open(dir).unwrap();
    let (manifest, blobs) = support::sample_image(&format!("{}/{tag}", dir.display()));
    for (_, bytes) in &blobs {
        layout.write_blob(bytes).unwrap();
    }
    layout.write_blob(&manifest).unwrap();
    let desc = Descriptor::of(OCI_MANIFEST, &manifest);
    layout.set_tag(tag, &desc).unwrap();
    desc.digest
}

/// The layers of the `.sig` manifest of `digest` in the layout at `dir`.
fn layout_signature_layers(dir: &Path, digest: &Digest) -> Vec<Descriptor> {
    let layout = OciLayout::open(dir).unwrap();
    let desc = layout
        .find_tag(&digest.signature_tag())
        .unwrap()
        .expect("signature tag present");
    match layout.read_manifest(&desc, 1 << 20).unwrap().manifest {
        Manifest::Image(m) => m.layers,
        other => panic!("not an image manifest: {other:?}"),
    }
}

/// Every file under `dir`, recursively.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// The layout at `dir` is consistent: `index.json` parses, every blob at a final name hashes to
/// its name (no half-written file was renamed into place), every manifest `index.json` names is
/// present. Returns how many temporary files (`.tmp-…`, never read by anyone) were left behind.
fn assert_layout_consistent(dir: &Path) -> usize {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap())
            .expect("index.json is valid JSON");
    let layout = OciLayout::open(dir).unwrap();
    let mut temps = 0;
    for path in walk(&dir.join("blobs")) {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if name.starts_with(".tmp-") {
            temps += 1;
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(
            Digest::sha256(&bytes).hex(),
            name,
            "{} holds content of another digest",
            path.display()
        );
    }
    for entry in index["manifests"].as_array().unwrap() {
        let desc: Descriptor = serde_json::from_value(entry.clone()).unwrap();
        layout.read_manifest(&desc, 1 << 20).unwrap();
    }
    for name in std::fs::read_dir(dir).unwrap() {
        let name = name.unwrap().file_name().to_string_lossy().to_string();
        if name.starts_with(".tmp-") {
            temps += 1;
        }
    }
    temps
}

/// Make every `.tmp-` file under `dir` look two hours old (as if left by a long-dead process);
/// returns how many there were.
fn age_temporary_files(dir: &Path) -> usize {
    let old = std::time::SystemTime::now() - Duration::from_secs(2 * 3600);
    let mut n = 0;
    for path in walk(dir) {
        if path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with(".tmp-")
        {
            std::fs::File::options()
                .write(true)
                .open(&path)
                .unwrap()
                .set_modified(old)
                .unwrap();
            n += 1;
        }
    }
    n
}

/// What the signers' debug lines tell: how often a signer found its signature replaced and merged
/// again, how often the registry answered with a passing error, and how many manifest writes.
#[derive(Debug, Default, Clone, Copy)]
struct Retries {
    merged_again: usize,
    registry_errors: usize,
    writes: usize,
    /// Rounds abandoned before writing because the manifest changed after we read it.
    restarts: usize,
    /// The most manifest writes one signer made (each costs one of its 12 rounds).
    most_writes: usize,
}

impl Retries {
    fn of(stderr: &[u8]) -> Retries {
        let text = String::from_utf8_lossy(stderr);
        let count = |needle: &str| text.lines().filter(|l| l.contains(needle)).count();
        Retries {
            merged_again: count("merging again"),
            registry_errors: count("registry error while signatures are being written"),
            writes: count("wrote signature manifest"),
            restarts: count("changed while we prepared our write"),
            most_writes: count("wrote signature manifest"),
        }
    }

    fn add(&mut self, other: Retries) {
        self.merged_again += other.merged_again;
        self.registry_errors += other.registry_errors;
        self.writes += other.writes;
        self.restarts += other.restarts;
        self.most_writes = self.most_writes.max(other.most_writes);
    }
}

impl std::fmt::Display for Retries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} merge-again retries, {} registry-error retries, {} manifest writes (at most {} by \
             one signer), {} writes abandoned because the manifest changed first",
            self.merged_again, self.registry_errors, self.writes, self.most_writes, self.restarts
        )
    }
}

/// Start `SIGNERS` `signet sign` processes (one per key) on `image` at once; all must succeed.
/// Returns the retries they logged.
fn sign_concurrently(keys: &[(PathBuf, PathBuf)], extra: &[&str], image: &str) -> Retries {
    let children: Vec<Child> = keys
        .iter()
        .map(|(key, _)| {
            signet()
                .env("SIGNET_PASSWORD", PASSWORD)
                .env("SIGNET_LOG", "signet_verifier=debug")
                .args(["sign", "--key", s(key)])
                .args(extra)
                .arg(image)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let started = Instant::now();
    let mut total = Retries::default();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert_eq!(code(&out), 0, "concurrent sign: {}", text(&out));
        let retries = Retries::of(&out.stderr);
        total.add(retries);
        if started.elapsed() > SLOW_ROUND {
            // Show why a round was slow (the debug lines carry timestamps).
            println!(
                "slow signer ({retries}):\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    total
}

fn keys(dir: &Path) -> Vec<(PathBuf, PathBuf)> {
    (0..SIGNERS)
        .map(|i| keypair(dir, &format!("signer{i}")))
        .collect()
}

#[test]
fn eight_concurrent_signers_lose_no_signature_in_a_registry() {
    let reg = TestRegistry::start();
    let dir = tempfile::tempdir().unwrap();
    let keys = keys(dir.path());
    let started = Instant::now();
    let (mut lost, mut total_retries, mut slowest) = (0, Retries::default(), Duration::ZERO);
    for round in 0..ROUNDS {
        let tag = format!("r{round}");
        let digest = support::push_sample_image(&reg, &format!("concurrent/app:{tag}"));
        let image = format!("{}/concurrent/app@{digest}", reg.host());
        let t = Instant::now();
        let retried = sign_concurrently(&keys, &[], &image);
        let took = t.elapsed();
        slowest = slowest.max(took);
        total_retries.add(retried);
        let layers = registry_signature_layers(&reg, "concurrent/app", &digest);
        let distinct: BTreeSet<&Digest> = layers.iter().map(|l| &l.digest).collect();
        assert_eq!(distinct.len(), 1, "one payload, signed by eight keys");
        let mut missing = 0;
        for (_, public) in &keys {
            let out = run(&["verify", "--key", s(public), &image]);
            if code(&out) != 0 {
                missing += 1;
                eprintln!("round {round}: {} lost: {}", public.display(), text(&out));
            }
        }
        lost += missing;
        println!(
            "registry round {round}: {} layers, {missing} lost, {retried}, signing took {took:?}",
            layers.len()
        );
        assert_eq!(
            layers.len(),
            SIGNERS,
            "round {round}: every signer's layer present"
        );
    }
    let elapsed = started.elapsed();
    println!(
        "registry: {ROUNDS} rounds x {SIGNERS} signers, {lost} lost, {total_retries}, \
         {:?} per round on average (signing {slowest:?} at worst), {elapsed:?} in all",
        elapsed / ROUNDS as u32
    );
    assert_eq!(lost, 0);
}

#[test]
fn eight_concurrent_signers_lose_no_signature_in_a_layout() {
    let dir = tempfile::tempdir().unwrap();
    let keys = keys(dir.path());
    let layout = dir.path().join("layout");
    let identity_base = "registry.example/concurrent/app";
    let started = Instant::now();
    let (mut lost, mut total_retries, mut index_reads) = (0, Retries::default(), 0);
    for round in 0..ROUNDS {
        let tag = format!("r{round}");
        let digest = layout_image(&layout, &tag);
        let image = format!("oci:{}:{tag}", layout.display());
        let identity = format!("{identity_base}:{tag}");
        // Read index.json over and over while the signers write it: every read must parse.
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader = {
            let stop = stop.clone();
            let path = layout.join("index.json");
            std::thread::spawn(move || {
                let mut reads = 0usize;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let bytes = std::fs::read(&path).unwrap();
                    serde_json::from_slice::<serde_json::Value>(&bytes)
                        .expect("index.json is valid JSON at every moment");
                    reads += 1;
                }
                reads
            })
        };
        let t = Instant::now();
        let retried = sign_concurrently(&keys, &["--identity", &identity], &image);
        let took = t.elapsed();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        index_reads += reader.join().unwrap();
        total_retries.add(retried);
        let layers = layout_signature_layers(&layout, &digest);
        let mut missing = 0;
        for (_, public) in &keys {
            let out = run(&[
                "verify",
                "--key",
                s(public),
                "--identity",
                &identity,
                &image,
            ]);
            if code(&out) != 0 {
                missing += 1;
                eprintln!("round {round}: {} lost: {}", public.display(), text(&out));
            }
        }
        lost += missing;
        println!(
            "layout round {round}: {} layers, {missing} lost, {retried}, signing took {took:?}",
            layers.len()
        );
        assert_eq!(
            layers.len(),
            SIGNERS,
            "round {round}: every signer's layer present"
        );
        assert_eq!(
            assert_layout_consistent(&layout),
            0,
            "no temporary files left"
        );
    }
    // Every round's image and signature tag are still there (no tag update was lost).
    let index = OciLayout::open(&layout).unwrap().index().unwrap();
    assert_eq!(index.manifests.len(), 2 * ROUNDS);
    let elapsed = started.elapsed();
    println!(
        "layout: {ROUNDS} rounds x {SIGNERS} signers, {lost} lost, {total_retries}, \
         {index_reads} concurrent index.json reads all valid, {:?} per round, {elapsed:?} in all",
        elapsed / ROUNDS as u32
    );
    assert_eq!(lost, 0);
}

/// A kill time for a command whose quickest full run took `full`: uniform over 30%..110% of it
/// (the first part of a run is process start and key decryption, where nothing is written yet,
/// and some kills should land just after the end).
fn kill_delay(rng: &mut Rng, full: Duration) -> Duration {
    let full = full.as_millis() as u64;
    Duration::from_millis(full * 3 / 10 + rng.below(full * 8 / 10 + 1))
}

/// Spawn `args`, SIGKILL it after `delay`; returns whether it had already finished.
fn spawn_and_kill(args: &[&str], delay: Duration) -> bool {
    let mut child = signet()
        .env("SIGNET_PASSWORD", PASSWORD)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(delay);
    let finished = child.try_wait().unwrap().is_some();
    // Child::kill sends SIGKILL on Unix: no destructor, no clean-up runs.
    let _ = child.kill();
    child.wait().unwrap();
    finished
}

/// A signer's writes to one store as seen from outside the process, in the store's own files:
/// `marks` are directories that gain an entry with every blob write begun (an upload started, a
/// blob linked or renamed into place, a temporary file), and `commit` is the file whose bytes
/// change when the signature manifest is committed (the registry's tag link, the layout's
/// `index.json`).
struct WriteWatch {
    marks: Vec<PathBuf>,
    temp_dir: Option<PathBuf>,
    commit: PathBuf,
}

/// What a watched store's files said at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
struct WriteState {
    marks: usize,
    commit: Vec<u8>,
}

impl WriteWatch {
    /// The `.sig` writes for `digest` in repository `repo` of `reg` (docker-registry's storage
    /// layout: an upload directory per upload started, a `_layers` link per blob received).
    fn registry(reg: &TestRegistry, repo: &str, digest: &Digest) -> WriteWatch {
        let repo_dir = reg
            .storage_dir()
            .join("docker/registry/v2/repositories")
            .join(repo);
        WriteWatch {
            marks: vec![repo_dir.join("_uploads"), repo_dir.join("_layers/sha256")],
            temp_dir: None,
            commit: repo_dir
                .join("_manifests/tags")
                .join(digest.signature_tag())
                .join("current/link"),
        }
    }

    /// The writes to the layout at `dir` (blobs and their temporary files, `index.json`).
    fn layout(dir: &Path) -> WriteWatch {
        WriteWatch {
            marks: vec![dir.join("blobs/sha256")],
            temp_dir: Some(dir.to_path_buf()),
            commit: dir.join("index.json"),
        }
    }

    fn state(&self) -> WriteState {
        let entries = |d: &Path| std::fs::read_dir(d).map_or(0, |r| r.count());
        let temps = self.temp_dir.as_deref().map_or(0, |d| {
            std::fs::read_dir(d).map_or(0, |r| {
                r.filter(|e| {
                    e.as_ref()
                        .is_ok_and(|e| e.file_name().to_string_lossy().starts_with(".tmp-"))
                })
                .count()
            })
        });
        WriteState {
            marks: self.marks.iter().map(|d| entries(d)).sum::<usize>() + temps,
            commit: std::fs::read(&self.commit).unwrap_or_default(),
        }
    }
}

/// Where in its run a killed signer was, judged from the store's files and the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KillPoint {
    /// Nothing of the run had been written yet (start-up, key decryption, reads).
    BeforeWrite,
    /// Blob writes had begun and the signature manifest was not committed: the kill cut the
    /// write itself, which is what the test is about.
    InsideWrite,
    /// The signature manifest was committed (the run was confirming or exiting).
    AfterCommit,
    /// The process had exited before the kill.
    Finished,
}

impl KillPoint {
    fn of(finished: bool, before: &WriteState, after: &WriteState) -> KillPoint {
        if finished {
            KillPoint::Finished
        } else if after.commit != before.commit {
            KillPoint::AfterCommit
        } else if after.marks > before.marks {
            KillPoint::InsideWrite
        } else {
            KillPoint::BeforeWrite
        }
    }
}

/// How many kills landed where.
#[derive(Debug, Default)]
struct KillCounts {
    before_write: usize,
    inside_write: usize,
    after_commit: usize,
    finished: usize,
}

impl KillCounts {
    fn add(&mut self, point: KillPoint) {
        match point {
            KillPoint::BeforeWrite => self.before_write += 1,
            KillPoint::InsideWrite => self.inside_write += 1,
            KillPoint::AfterCommit => self.after_commit += 1,
            KillPoint::Finished => self.finished += 1,
        }
    }
}

impl std::fmt::Display for KillCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} before any write, {} inside the write, {} after the commit, {} after the process \
             had exited",
            self.before_write, self.inside_write, self.after_commit, self.finished
        )
    }
}

/// How long between a poll of a watched store's files.
const WATCH_POLL: Duration = Duration::from_micros(200);

/// Three full runs of `signet sign` with `args` (each with its own annotation, so each really
/// writes), watched through `watch`: see [`measure_runs`].
fn measure_sign(args: &[&str], watch: &WriteWatch) -> (Duration, Duration) {
    let runs: Vec<(Vec<String>, &WriteWatch)> = (0..3)
        .map(|n| {
            let mut full = vec!["sign".to_string(), "-a".into(), format!("measure={n}")];
            full.extend(args.iter().map(|a| a.to_string()));
            (full, watch)
        })
        .collect();
    measure_runs(&runs)
}

/// Full runs of `signet ARGS`, each watched through its `WriteWatch`: the quickest run, and the
/// shortest time from a run's first write being seen to its commit being seen (the shortest, so
/// that aimed kills fall inside the write even when a run is quick; a slow run only moves them
/// towards its start).
fn measure_runs(runs: &[(Vec<String>, &WriteWatch)]) -> (Duration, Duration) {
    let mut quickest = Duration::MAX;
    let mut window = Duration::MAX;
    for (args, watch) in runs {
        let before = watch.state();
        let started = Instant::now();
        let mut child = signet()
            .env("SIGNET_PASSWORD", PASSWORD)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (mut first_write, mut commit) = (None, None);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            let now = watch.state();
            if first_write.is_none() && now.marks > before.marks {
                first_write = Some(started.elapsed());
            }
            if commit.is_none() && now.commit != before.commit {
                commit = Some(started.elapsed());
            }
            std::thread::sleep(WATCH_POLL);
        };
        let elapsed = started.elapsed();
        let out = child.wait_with_output().unwrap();
        assert!(status.success(), "signet {args:?}: {}", text(&out));
        quickest = quickest.min(elapsed);
        let first_write = first_write.expect("a full run's first write was seen");
        let commit = commit.unwrap_or(elapsed);
        window = window.min(commit.saturating_sub(first_write));
    }
    (quickest, window)
}

/// Spawn `args`; once `watch` shows its first write, SIGKILL it `offset` later. Returns whether it
/// had exited before that (without the write seen, or before the kill).
fn spawn_and_kill_in_write(args: &[&str], watch: &WriteWatch, offset: Duration) -> bool {
    let before = watch.state();
    let mut child = signet()
        .env("SIGNET_PASSWORD", PASSWORD)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if child.try_wait().unwrap().is_some() {
            return true;
        }
        if watch.state().marks > before.marks {
            break;
        }
        assert!(Instant::now() < deadline, "signet {args:?} never wrote");
        std::thread::sleep(WATCH_POLL);
    }
    std::thread::sleep(offset);
    let finished = child.try_wait().unwrap().is_some();
    let _ = child.kill();
    child.wait().unwrap();
    finished
}

/// The signatures of killed runs found at the end agree with where the kills landed: every run
/// that committed (or exited) left its signature, a run killed inside the write at most did (its
/// last request may still have been applied), none killed before writing did.
fn assert_landed_matches(landed: usize, points: &KillCounts) {
    let committed = points.after_commit + points.finished;
    assert!(
        (committed..=committed + points.inside_write).contains(&landed),
        "{landed} killed runs' signatures landed, but the kills were: {points}"
    );
}

/// Every other kill is aimed at the write (drawn over the measured time from first write to
/// commit, after the first write is seen); the rest fall anywhere in the run. At least this many
/// of the 30 kills must land inside the write, in each store, or the test proves nothing about a
/// kill mid-write. Measured on a 2-core machine, alone and beside the other robustness tests:
/// signers 11 to 18 inside the write in the registry, 15 to 17 in the layout; copies 14 to 16 and
/// 19 to 21 (almost all of them aimed: unaimed, no copy to a registry was ever killed inside its
/// write), so 5 leaves room for a slow machine without letting a test that stopped aiming pass.
const MIN_KILLS_INSIDE_WRITE: usize = 5;

/// Kill `args` (a `sign` or `copy` run) once, aimed at the write for odd `i`, anywhere in the run
/// (by `kill_delay`) for even `i`; says where the kill landed.
fn kill_run(
    i: usize,
    args: &[&str],
    watch: &WriteWatch,
    rng: &mut Rng,
    (full, window): (Duration, Duration),
) -> (KillPoint, Duration) {
    let before = watch.state();
    let (finished, delay) = if i % 2 == 1 {
        let micros = window.as_micros() as u64;
        let offset = Duration::from_micros(rng.below(micros + 1));
        (spawn_and_kill_in_write(args, watch, offset), offset)
    } else {
        let delay = kill_delay(rng, full);
        (spawn_and_kill(args, delay), delay)
    };
    (KillPoint::of(finished, &before, &watch.state()), delay)
}

#[test]
fn killed_signers_leave_registry_and_layout_consistent() {
    let mut rng = Rng::from_env("killed signers");
    let reg = TestRegistry::start();
    let dir = tempfile::tempdir().unwrap();
    let (key_a, pub_a) = keypair(dir.path(), "a");
    let (key_b, pub_b) = keypair(dir.path(), "b");

    // Registry. Each killed run by B signs with its own annotation, so each has a new signature
    // to write (a run whose signature is already there only reads).
    let digest = support::push_sample_image(&reg, "crash/app:v1");
    let image = format!("{}/crash/app@{digest}", reg.host());
    ok(&["sign", "--key", s(&key_a), &image]);
    let scratch_digest = support::push_sample_image(&reg, "crash/scratch:v1");
    let scratch = format!("{}/crash/scratch@{scratch_digest}", reg.host());
    let timing = measure_sign(
        &["--key", s(&key_b), &scratch],
        &WriteWatch::registry(&reg, "crash/scratch", &scratch_digest),
    );
    let (full, window) = timing;
    let (min_ms, max_ms) = (full.as_millis() * 3 / 10, full.as_millis() * 11 / 10);
    let watch = WriteWatch::registry(&reg, "crash/app", &digest);
    let mut points = KillCounts::default();
    let mut aimed = KillCounts::default();
    for i in 0..KILLS {
        let note = format!("killed={i}");
        let (point, delay) = kill_run(
            i,
            &["sign", "--key", s(&key_b), "-a", &note, &image],
            &watch,
            &mut rng,
            timing,
        );
        points.add(point);
        if i % 2 == 1 {
            aimed.add(point);
        }
        let out = run(&["verify", "--key", s(&pub_a), &image]);
        assert_eq!(
            code(&out),
            0,
            "kill {i} ({point:?}, {delay:?}): A's signature intact: {}",
            text(&out)
        );
        registry_signature_layers(&reg, "crash/app", &digest);
        // A later signer (another payload, so it really writes) still works.
        let note = format!("after-kill={i}");
        ok(&["sign", "--key", s(&key_a), "-a", &note, &image]);
    }
    ok(&["sign", "--key", s(&key_b), &image]);
    ok(&["verify", "--key", s(&pub_a), &image]);
    ok(&["verify", "--key", s(&pub_b), &image]);
    let layers = registry_signature_layers(&reg, "crash/app", &digest);
    let landed = layers.len().saturating_sub(1 + KILLS + 1);
    println!(
        "registry: {KILLS} sign processes killed, half {min_ms}..{max_ms} ms after start (the quickest full \
         run took {full:?}), half aimed at the write (up to {window:?} after its first write was \
         seen): {points}; of the aimed ones {aimed}; {landed} killed runs' signatures landed \
         whole; A verified after every kill; {} layers at the end",
        layers.len()
    );
    assert!(layers.len() >= KILLS + 2, "A, A's {KILLS} re-signs, B");
    assert_landed_matches(landed, &points);
    assert!(
        points.inside_write >= MIN_KILLS_INSIDE_WRITE,
        "registry: only {} of {KILLS} kills landed inside the write ({points})",
        points.inside_write
    );

    // OCI layout.
    let layout = dir.path().join("layout");
    let digest = layout_image(&layout, "v1");
    let image = format!("oci:{}:v1", layout.display());
    let identity = "registry.example/crash/app:v1";
    ok(&["sign", "--key", s(&key_a), "--identity", identity, &image]);
    let scratch_dir = dir.path().join("scratch");
    layout_image(&scratch_dir, "v1");
    let scratch = format!("oci:{}:v1", scratch_dir.display());
    let timing = measure_sign(
        &["--key", s(&key_b), "--identity", identity, &scratch],
        &WriteWatch::layout(&scratch_dir),
    );
    let (full, window) = timing;
    let (min_ms, max_ms) = (full.as_millis() * 3 / 10, full.as_millis() * 11 / 10);
    let watch = WriteWatch::layout(&layout);
    let mut points = KillCounts::default();
    let mut aimed = KillCounts::default();
    let mut temps = 0;
    for i in 0..KILLS {
        let note = format!("killed={i}");
        let (point, delay) = kill_run(
            i,
            &[
                "sign",
                "--key",
                s(&key_b),
                "--identity",
                identity,
                "-a",
                &note,
                &image,
            ],
            &watch,
            &mut rng,
            timing,
        );
        points.add(point);
        if i % 2 == 1 {
            aimed.add(point);
        }
        temps = temps.max(assert_layout_consistent(&layout));
        let out = run(&["verify", "--key", s(&pub_a), "--identity", identity, &image]);
        assert_eq!(
            code(&out),
            0,
            "kill {i} ({point:?}, {delay:?}): A's signature intact: {}",
            text(&out)
        );
        ok(&["validate", &image]);
        let note = format!("after-kill={i}");
        ok(&[
            "sign",
            "--key",
            s(&key_a),
            "--identity",
            identity,
            "-a",
            &note,
            &image,
        ]);
    }
    ok(&["sign", "--key", s(&key_b), "--identity", identity, &image]);
    ok(&["verify", "--key", s(&pub_a), "--identity", identity, &image]);
    ok(&["verify", "--key", s(&pub_b), "--identity", identity, &image]);
    temps = temps.max(assert_layout_consistent(&layout));
    // What killed writers left behind is swept by a later writer once it is old.
    let aged = age_temporary_files(&layout);
    ok(&[
        "sign",
        "--key",
        s(&key_a),
        "--identity",
        identity,
        "-a",
        "sweep=1",
        &image,
    ]);
    assert_eq!(
        assert_layout_consistent(&layout),
        0,
        "stale temporary files swept"
    );
    let layers = layout_signature_layers(&layout, &digest);
    let landed = layers.len().saturating_sub(1 + KILLS + 2);
    assert_landed_matches(landed, &points);
    assert!(
        points.inside_write >= MIN_KILLS_INSIDE_WRITE,
        "layout: only {} of {KILLS} kills landed inside the write ({points})",
        points.inside_write
    );
    println!(
        "layout: {KILLS} sign processes killed, half {min_ms}..{max_ms} ms after start (the quickest full \
         run took {full:?}), half aimed at the write (up to {window:?} after its first write was \
         seen): {points}; of the aimed ones {aimed}; {landed} killed runs' signatures landed \
         whole; consistent after every kill; {} layers at the end; {temps} temporary \
         file(s) left behind at most, {aged} at the end, swept by the next signer once old",
        layers.len()
    );
    assert!(layers.len() >= 1 + KILLS + 2);
}

/// Sign `image` (a registry reference or `oci:` location) through the library, to set up many
/// signed images quickly (no process start, no key decryption per image).
fn library_sign(image: &str, identity: &str, key: &signet_sign::keys::SigningKey) {
    let location: signet_oci::ImageLocation = image.parse().unwrap();
    let identity: signet_oci::Reference = identity.parse().unwrap();
    let c = client();
    runtime().block_on(async {
        let store = signet_oci::ImageStore::open(&location, &c).unwrap();
        let options = signet_verifier::sign::SignOptions::default();
        signet_verifier::sign::sign_image(&store, &store, &identity, key, &options)
            .await
            .unwrap();
    });
}

fn decrypt(path: &Path) -> signet_sign::keys::SigningKey {
    signet_sign::keys::read_private_key_file(path, PASSWORD.as_bytes())
        .unwrap()
        .key
}

#[test]
fn killed_copies_leave_registry_and_layout_consistent() {
    let mut rng = Rng::from_env("killed copies");
    let reg = TestRegistry::start();
    let dir = tempfile::tempdir().unwrap();
    let (key_a, pub_a) = keypair(dir.path(), "a");
    let (key_b, pub_b) = keypair(dir.path(), "b");
    let (signer_a, signer_b) = (decrypt(&key_a), decrypt(&key_b));
    let host = reg.host();

    // Every iteration copies a new image (signed by B in the registry) into one layout that
    // already holds an image signed by A, so each killed copy was doing real work.
    let layout = dir.path().join("layout");
    let old_digest = layout_image(&layout, "old");
    let old = format!("oci:{}:old", layout.display());
    let old_identity = "registry.example/old/app:v1";
    ok(&["sign", "--key", s(&key_a), "--identity", old_identity, &old]);
    let sources: Vec<(String, String)> = (0..KILLS + 3)
        .map(|i| {
            support::push_sample_image(&reg, &format!("copysrc/app:i{i}"));
            let src = format!("{host}/copysrc/app:i{i}");
            library_sign(&src, &src, &signer_b);
            (src, format!("oci:{}:copied-{i}", layout.display()))
        })
        .collect();
    // Kill times from three full runs into scratch layouts: up to the quickest of them, or aimed
    // at the write (see `kill_run`).
    let scratch: Vec<PathBuf> = (0..3)
        .map(|n| dir.path().join(format!("scratch{n}")))
        .collect();
    let scratch_watches: Vec<WriteWatch> = scratch.iter().map(|d| WriteWatch::layout(d)).collect();
    let runs: Vec<(Vec<String>, &WriteWatch)> = scratch
        .iter()
        .zip(&scratch_watches)
        .map(|(d, w)| {
            let dst = format!("oci:{}:v1", d.display());
            (vec!["copy".into(), sources[KILLS].0.clone(), dst], w)
        })
        .collect();
    let timing = measure_runs(&runs);
    let (full, window) = timing;
    let (min_ms, max_ms) = (full.as_millis() * 3 / 10, full.as_millis() * 11 / 10);
    let mut temps = 0;
    let watch = WriteWatch::layout(&layout);
    let mut points = KillCounts::default();
    for (i, (src, dst)) in sources.iter().take(KILLS).enumerate() {
        let (point, _) = kill_run(i, &["copy", src, dst], &watch, &mut rng, timing);
        points.add(point);
        temps = temps.max(assert_layout_consistent(&layout));
        ok(&[
            "verify",
            "--key",
            s(&pub_a),
            "--identity",
            old_identity,
            &old,
        ]);
        ok(&["validate", &old]);
        // Whatever the killed copy left under its tag is whole.
        if OciLayout::open(&layout)
            .unwrap()
            .find_tag(&format!("copied-{i}"))
            .unwrap()
            .is_some()
        {
            ok(&["validate", dst]);
        }
        // Running the copy again completes it, over whatever the killed one left.
        ok(&["copy", src, dst]);
        ok(&["validate", dst]);
        ok(&["verify", "--key", s(&pub_b), "--identity", src, dst]);
        // And a signer can still write to the layout.
        ok(&[
            "sign",
            "--key",
            s(&key_a),
            "--identity",
            old_identity,
            "-a",
            &format!("after-kill={i}"),
            &old,
        ]);
    }
    temps = temps.max(assert_layout_consistent(&layout));
    let aged = age_temporary_files(&layout);
    ok(&["copy", &sources[KILLS].0, &sources[KILLS].1]);
    assert_eq!(
        assert_layout_consistent(&layout),
        0,
        "stale temporary files swept"
    );
    ok(&[
        "verify",
        "--key",
        s(&pub_a),
        "--identity",
        old_identity,
        &old,
    ]);
    assert_eq!(
        layout_signature_layers(&layout, &old_digest).len(),
        1 + KILLS
    );
    println!(
        "copy to layout: {KILLS} copies killed, half {min_ms}..{max_ms} ms after start (the quickest \
         full run took {full:?}), half aimed at the write (up to {window:?} after its first write \
         was seen): {points}; consistent after every kill, every copy completed when run again; \
         {temps} temporary file(s) left behind at most, {aged} at the end, swept by the next copy \
         once old"
    );
    assert!(
        points.inside_write >= MIN_KILLS_INSIDE_WRITE,
        "copy to layout: only {} of {KILLS} kills landed inside the write ({points})",
        points.inside_write
    );

    // Layout to registry: each destination already holds the image signed by A; the copy brings
    // B's signature along and must never drop A's.
    for (src, dst) in &sources[KILLS + 1..] {
        ok(&["copy", src, dst]);
    }
    let targets: Vec<(String, String)> = (0..KILLS + 3)
        .map(|i| {
            let dst = format!("{host}/copydst/app:i{i}");
            ok(&["copy", "--no-signatures", &sources[i].0, &dst]);
            library_sign(&dst, &sources[i].0, &signer_a);
            (sources[i].1.clone(), dst)
        })
        .collect();
    // Kill times from three full runs onto the same kind of destination (image there, signed by
    // A; B's signature to merge in). Such a copy commits B's signature early and then spends most
    // of its run confirming it (in a registry nothing locks out a concurrent writer), so the
    // aimed half is what reaches the write.
    let digest_of = |src: &str| -> Digest {
        String::from_utf8(ok(&["digest", src]).stdout)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let target_watches: Vec<WriteWatch> = targets[KILLS..]
        .iter()
        .map(|(src, _)| WriteWatch::registry(&reg, "copydst/app", &digest_of(src)))
        .collect();
    let runs: Vec<(Vec<String>, &WriteWatch)> = targets[KILLS..]
        .iter()
        .zip(&target_watches)
        .map(|((src, dst), w)| (vec!["copy".into(), src.clone(), dst.clone()], w))
        .collect();
    let timing = measure_runs(&runs);
    let (full, window) = timing;
    let (min_ms, max_ms) = (full.as_millis() * 3 / 10, full.as_millis() * 11 / 10);
    let mut points = KillCounts::default();
    for (i, (src, dst)) in targets.iter().take(KILLS).enumerate() {
        let identity = &sources[i].0;
        let watch = WriteWatch::registry(&reg, "copydst/app", &digest_of(src));
        let (point, delay) = kill_run(i, &["copy", src, dst], &watch, &mut rng, timing);
        points.add(point);
        let out = run(&["verify", "--key", s(&pub_a), "--identity", identity, dst]);
        assert_eq!(
            code(&out),
            0,
            "kill {i} ({point:?}, {delay:?}): A intact: {}",
            text(&out)
        );
        ok(&["validate", dst]);
        ok(&["copy", src, dst]);
        ok(&["verify", "--key", s(&pub_a), "--identity", identity, dst]);
        ok(&["verify", "--key", s(&pub_b), "--identity", identity, dst]);
        let digest: Digest = String::from_utf8(ok(&["digest", dst]).stdout)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert_eq!(
            registry_signature_layers(&reg, "copydst/app", &digest).len(),
            2,
            "A's and B's"
        );
    }
    assert!(
        points.inside_write >= MIN_KILLS_INSIDE_WRITE,
        "copy to registry: only {} of {KILLS} kills landed inside the write ({points})",
        points.inside_write
    );
    println!(
        "copy to registry: {KILLS} copies killed, half {min_ms}..{max_ms} ms after start (the \
         quickest full run took {full:?}), half aimed at the write (up to {window:?} after its first \
         write was seen): {points}; A verified after every kill, \
         every copy completed when run again"
    );
}

/// Every textual form of `der` (a PKCS#8 private key) and of its 32-byte secret scalar that could
/// leak: hex (both cases), base64, and the base64 lines of the PEM body.
fn secret_forms(der: &[u8], pem_body_lines: &[String]) -> Vec<String> {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut forms = vec![hex::encode(der), hex::encode_upper(der), b64.encode(der)];
    forms.extend(pem_body_lines.iter().filter(|l| l.len() >= 16).cloned());
    // The SEC1 ECPrivateKey inside: version 1, then the scalar as a 32-byte OCTET STRING.
    let marker = [0x02, 0x01, 0x01, 0x04, 0x20];
    let at = der
        .windows(marker.len())
        .position(|w| w == marker)
        .expect("a P-256 PKCS#8 key holds the SEC1 scalar");
    let scalar = &der[at + marker.len()..at + marker.len() + 32];
    forms.extend([
        hex::encode(scalar),
        hex::encode_upper(scalar),
        b64.encode(scalar),
    ]);
    // Base64 of the DER split differently from the PEM's lines (an 18-byte window is 24 characters
    // at every alignment) would still show up as a substring of one of these.
    for chunk in der.chunks(18).filter(|c| c.len() == 18) {
        forms.push(b64.encode(chunk));
    }
    forms
}

fn pem_body(pem: &str) -> Vec<String> {
    pem.lines()
        .filter(|l| !l.starts_with("-----") && !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

#[test]
fn no_command_prints_a_password_or_private_key() {
    let reg = TestRegistry::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let host = reg.host();
    support::push_sample_image(&reg, "secret/app:v1");
    let image = format!("{host}/secret/app:v1");

    // An unencrypted PKCS#8 key made by openssl, to import.
    let plain = d.join("plain.pem");
    let openssl = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    openssl(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        s(&plain),
    ]);
    let plain_der = openssl(&[
        "pkcs8",
        "-topk8",
        "-nocrypt",
        "-in",
        s(&plain),
        "-outform",
        "DER",
    ]);
    let plain_pem = std::fs::read_to_string(&plain).unwrap();
    assert!(plain_pem.starts_with("-----BEGIN PRIVATE KEY-----"));

    let gen_prefix = d.join("gen");
    let imp_prefix = d.join("imp");
    let (gen_key, gen_pub) = (
        gen_prefix.with_extension("key"),
        gen_prefix.with_extension("pub"),
    );
    let (imp_key, imp_pub) = (
        imp_prefix.with_extension("key"),
        imp_prefix.with_extension("pub"),
    );
    let (_, other_pub) = {
        let p = d.join("other");
        ok(&["generate-key-pair", "--output-key-prefix", s(&p)]);
        (p.with_extension("key"), p.with_extension("pub"))
    };
    let missing = d.join("missing.key");
    let layout = format!("oci:{}:v1", d.join("layout").display());
    let identity = format!("{host}/secret/app");
    let wrong_password = "wrong-pass-c0ffee";
    let (x_prefix, y_prefix) = (d.join("x"), d.join("y"));
    let absent_image = format!("{host}/secret/none:v1");

    // (password to use, args, expected exit code); every command that touches a key, with failures.
    let cases: Vec<(&str, Vec<&str>, i32)> = vec![
        (
            PASSWORD,
            vec!["generate-key-pair", "--output-key-prefix", s(&gen_prefix)],
            0,
        ),
        (
            PASSWORD,
            vec!["generate-key-pair", "--output-key-prefix", s(&gen_prefix)],
            2,
        ),
        (
            PASSWORD,
            vec![
                "import-key-pair",
                "--key",
                s(&plain),
                "--output-key-prefix",
                s(&imp_prefix),
            ],
            0,
        ),
        (
            PASSWORD,
            vec![
                "import-key-pair",
                "--key",
                s(&plain),
                "--output-key-prefix",
                s(&imp_prefix),
            ],
            2,
        ),
        (
            PASSWORD,
            vec![
                "import-key-pair",
                "--key",
                s(&missing),
                "--output-key-prefix",
                s(&x_prefix),
            ],
            2,
        ),
        (
            PASSWORD,
            vec![
                "import-key-pair",
                "--key",
                s(&gen_key),
                "--output-key-prefix",
                s(&y_prefix),
            ],
            2,
        ),
        (PASSWORD, vec!["public-key", "--key", s(&gen_key)], 0),
        (PASSWORD, vec!["public-key", "--key", s(&imp_key)], 0),
        (wrong_password, vec!["public-key", "--key", s(&gen_key)], 2),
        (PASSWORD, vec!["public-key", "--key", s(&missing)], 2),
        (PASSWORD, vec!["public-key", "--key", s(&plain)], 2),
        (PASSWORD, vec!["sign", "--key", s(&gen_key), &image], 0),
        (PASSWORD, vec!["sign", "--key", s(&imp_key), &image], 0),
        (
            wrong_password,
            vec!["sign", "--key", s(&gen_key), &image],
            2,
        ),
        (PASSWORD, vec!["sign", "--key", s(&missing), &image], 2),
        (PASSWORD, vec!["sign", "--key", s(&plain), &image], 2),
        (PASSWORD, vec!["sign", "--key", s(&gen_pub), &image], 2),
        (PASSWORD, vec!["verify", "--key", s(&gen_pub), &image], 0),
        (PASSWORD, vec!["verify", "--key", s(&imp_pub), &image], 0),
        (PASSWORD, vec!["verify", "--key", s(&other_pub), &image], 12),
        (PASSWORD, vec!["verify", "--key", s(&gen_key), &image], 2),
        (PASSWORD, vec!["verify", "--key", s(&plain), &image], 2),
        (PASSWORD, vec!["verify", "--key", s(&missing), &image], 2),
        (PASSWORD, vec!["copy", &image, &layout], 0),
        (
            PASSWORD,
            vec![
                "verify",
                "--key",
                s(&gen_pub),
                "--identity",
                &identity,
                &layout,
            ],
            0,
        ),
        (
            PASSWORD,
            vec![
                "sign",
                "--key",
                s(&gen_key),
                "--identity",
                &identity,
                "-a",
                "x=1",
                &layout,
            ],
            0,
        ),
        (PASSWORD, vec!["copy", &absent_image, &layout], 2),
    ];
    let mut transcript = String::new();
    let mut runs = 0;
    for verbosity in [None, Some("-vvv")] {
        for (password, args, expected) in &cases {
            // The second pass re-runs the same commands with trace logging; the generating
            // commands then fail (files exist), which is also a case worth checking.
            let mut cmd = signet();
            cmd.env("SIGNET_PASSWORD", password)
                .env("RUST_LOG", "trace")
                .env("SIGNET_LOG", "trace")
                .args(verbosity)
                .args(args);
            let out = cmd.output().unwrap();
            runs += 1;
            if verbosity.is_none() {
                assert_eq!(code(&out), *expected, "signet {args:?}: {}", text(&out));
            }
            transcript.push_str(&format!("$ signet {args:?}\n{}\n", text(&out)));
        }
    }
    // JSON logs too.
    for args in [
        vec![
            "--log-format",
            "json",
            "-vvv",
            "sign",
            "--key",
            s(&gen_key),
            "-a",
            "y=2",
            &image,
        ],
        vec![
            "--log-format",
            "json",
            "-vvv",
            "public-key",
            "--key",
            s(&gen_key),
        ],
    ] {
        let out = signet()
            .env("SIGNET_PASSWORD", PASSWORD)
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(code(&out), 0, "{}", text(&out));
        runs += 1;
        transcript.push_str(&format!("$ signet {args:?}\n{}\n", text(&out)));
    }
    assert!(
        transcript.contains("TRACE") || transcript.contains("\"level\":\"TRACE\""),
        "trace logging was on"
    );

    // The secrets: both passwords, the imported key in every form, and the generated key (as
    // decrypted by the library) in every form.
    let gen_der = signet_sign::keys::read_private_key_file(&gen_key, PASSWORD.as_bytes())
        .unwrap()
        .key
        .to_pkcs8_der()
        .unwrap();
    let gen_pem_body: Vec<String> = {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(&gen_der[..]);
        b64.as_bytes()
            .chunks(64)
            .map(|c| String::from_utf8(c.to_vec()).unwrap())
            .collect()
    };
    let mut secrets = vec![PASSWORD.to_string(), wrong_password.to_string()];
    secrets.extend(secret_forms(&plain_der, &pem_body(&plain_pem)));
    secrets.extend(secret_forms(&gen_der, &gen_pem_body));
    // The imported key file decrypts to the very key imported (so its forms above are the ones
    // that matter for it).
    let imported = signet_sign::keys::read_private_key_file(&imp_key, PASSWORD.as_bytes()).unwrap();
    assert_eq!(
        imported.key.to_pkcs8_der().unwrap().as_slice(),
        plain_der.as_slice()
    );
    // The search can find what is there: the public key, which `public-key` prints, is found.
    let public_pem = std::fs::read_to_string(&gen_pub).unwrap();
    assert!(pem_body(&public_pem)
        .iter()
        .all(|line| transcript.contains(line.as_str())));
    for secret in &secrets {
        assert!(
            !transcript.contains(secret.as_str()),
            "output contains a secret ({} chars)",
            secret.len()
        );
    }
    println!(
        "{runs} command runs ({} cases, plain and -vvv with RUST_LOG/SIGNET_LOG=trace, plus JSON logs), \
         {} bytes of output searched for {} secret strings: none found",
        cases.len(),
        transcript.len(),
        secrets.len()
    );

    // Key files are created 0600; a key others can read is used, with a warning.
    for key in [&gen_key, &imp_key] {
        let mode = std::fs::metadata(key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", key.display());
    }
    for key in [&gen_pub, &imp_pub] {
        let pem = std::fs::read_to_string(key).unwrap();
        assert!(
            pem.starts_with("-----BEGIN PUBLIC KEY-----"),
            "{}",
            key.display()
        );
    }
    std::fs::set_permissions(&gen_key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = run(&["sign", "--key", s(&gen_key), "-a", "perm=644", &image]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("warning") && stderr.contains("readable by other users"),
        "{stderr}"
    );
    assert!(stderr.contains(s(&gen_key)), "names the file: {stderr}");
    std::fs::set_permissions(&gen_key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = run(&["sign", "--key", s(&gen_key), "-a", "perm=600", &image]);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("readable by other users"));
}
