//! Scope selection and evaluation throughput: 100k references against a policy with 1,000 scopes
//! of every kind, on one thread. Plain `harness = false` bench timed with `std::time`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::hint::black_box;
use std::time::Instant;

use signet_oci::{Digest, Reference};
use signet_policy::{evaluate, Evidence, Policy, PublicKey, SignatureEvidence};

const KEY: &str = include_str!("../../testdata/policies/keys/keyA.pub");
const SCOPES: usize = 1_000;
const REFERENCES: usize = 100_000;
const ROUNDS: usize = 5;

/// 1,000 scopes: full references, repositories, namespaces, hosts, domains and globs.
fn policy_text() -> String {
    let mut out = String::from("keys:\n  release:\n    pem: |\n");
    for line in KEY.lines() {
        let _ = writeln!(out, "      {line}");
    }
    out.push_str("default:\n  reject: unlisted\nscopes:\n");
    let signed = "{signed: {keys: [release], identity: matchRepoDigestOrExact}}";
    for i in 0..SCOPES {
        let pattern = match i % 10 {
            0 => format!("registry{}.example.com/team{}/app{}:v1", i % 50, i % 37, i),
            1 | 2 => format!("registry{}.example.com/team{}/app{}", i % 50, i % 37, i),
            3 => format!("registry{}.example.com/team{}/ns{}", i % 50, i % 37, i),
            4 => format!("host{i}.example.org:5000"),
            5 => format!("*.zone{i}.example.net"),
            6 => format!("registry{}.example.com/glob{i}/*", i % 50),
            7 => format!("registry{}.example.com/deep{i}/**", i % 50),
            8 => format!("mirror{i}.example.com/team-*/app{i}"),
            _ => format!("registry{}.example.com/other{i}", i % 50),
        };
        let _ = writeln!(out, "  \"{pattern}\": {signed}");
    }
    out
}

fn references() -> Vec<Reference> {
    (0..REFERENCES)
        .map(|n| {
            // Pick a scope of the kind this reference exercises (scope kind = index % 10).
            let kind = [0, 1, 3, 4, 5, 6, 7, 9][n % 8];
            let i = ((n * 7919) % (SCOPES / 10)) * 10 + kind;
            let text = match n % 8 {
                0 => format!("registry{}.example.com/team{}/app{}:v1", i % 50, i % 37, i),
                1 => format!("registry{}.example.com/team{}/app{}:v2", i % 50, i % 37, i),
                2 => format!(
                    "registry{}.example.com/team{}/ns{}/svc:1",
                    i % 50,
                    i % 37,
                    i
                ),
                3 => format!("host{i}.example.org:5000/a/b:1"),
                4 => format!("edge.zone{i}.example.net/x:1"),
                5 => format!("registry{}.example.com/glob{i}/x:1", i % 50),
                6 => format!("registry{}.example.com/deep{i}/a/b/c:1", i % 50),
                _ if n % 16 == 7 => format!("registry{}.example.com/other{i}/sub:1", i % 50),
                _ => format!("unknown{n}.example.io/nothing/here:1"),
            };
            text.parse().unwrap()
        })
        .collect()
}

fn main() {
    let text = policy_text();
    let no_files = |p: &str| -> Result<Vec<u8>, String> { Err(format!("no file {p}")) };
    let start = Instant::now();
    let policy = Policy::load("bench.yaml", &text, &no_files).unwrap().policy;
    let load = start.elapsed();
    assert_eq!(policy.scope_count(), SCOPES);
    let refs = references();

    // Best of several rounds: the machine is shared, and the best round is the least disturbed.
    let mut matched = 0usize;
    let mut select = std::time::Duration::MAX;
    for _ in 0..ROUNDS {
        matched = 0;
        let start = Instant::now();
        for r in &refs {
            if black_box(policy.select(black_box(r))).is_some() {
                matched += 1;
            }
        }
        select = select.min(start.elapsed());
    }

    let key_id = PublicKey::from_pem(KEY.as_bytes()).unwrap().id().clone();
    let digest = Digest::sha256(b"bench");
    let evidence: Vec<Evidence> = refs
        .iter()
        .map(|r| Evidence {
            reference: r.clone(),
            digest: digest.clone(),
            reference_had_digest: false,
            signatures: vec![SignatureEvidence::legacy_key(
                key_id.clone(),
                r.to_string(),
                true,
                BTreeMap::new(),
            )],
            configs: vec![],
        })
        .collect();
    let mut allowed = 0usize;
    let mut eval = std::time::Duration::MAX;
    for _ in 0..ROUNDS {
        allowed = 0;
        let start = Instant::now();
        for e in &evidence {
            if black_box(evaluate(&policy, black_box(e), 1_800_000_000)).decision
                == signet_policy::Decision::Allow
            {
                allowed += 1;
            }
        }
        eval = eval.min(start.elapsed());
    }

    let per_sec = |d: std::time::Duration| REFERENCES as f64 / d.as_secs_f64();
    println!("policy load ({SCOPES} scopes, lint incl. tie check): {load:?}");
    println!(
        "scope selection: {REFERENCES} refs in {select:?} (best of {ROUNDS}) = {:.0} selections/s ({} matched a scope)",
        per_sec(select),
        matched
    );
    println!(
        "evaluation:      {REFERENCES} refs in {eval:?} (best of {ROUNDS}) = {:.0} evaluations/s ({} allowed)",
        per_sec(eval),
        allowed
    );
}
