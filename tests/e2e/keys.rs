//! Keys and signatures checked by independent implementations: the `openssl` CLI verifies Signet's
//! signatures (and Signet verifies openssl's), and Python (`hashlib.scrypt` + PyNaCl) decrypts
//! Signet's key files and writes key files Signet decrypts. Library level; no `signet` binary yet.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output, Stdio};

use base64::Engine as _;
use signet_sign::keys::{read_private_key_file, read_public_key_file, write_key_pair};
use signet_sign::{
    signature, EncryptedKeyFile, Error, PublicKey, SigningKey, SimpleSigningPayload,
};

fn run(program: &str, args: &[&str], install_hint: &str) -> Output {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} ({e}): {install_hint}"))
}

fn openssl(args: &[&str]) -> Output {
    run(
        "openssl",
        args,
        "install the openssl CLI (apt-get install openssl)",
    )
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn payload() -> Vec<u8> {
    SimpleSigningPayload::new(
        "127.0.0.1:5000/test/app",
        signet_oci::Digest::sha256(b"{\"schemaVersion\":2}"),
    )
    .to_bytes()
}

#[test]
fn openssl_verifies_a_signet_signature() {
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::generate();
    let (_, pub_path) = write_key_pair(&dir.path().join("signet"), &key, b"pw", false).unwrap();
    let payload_path = dir.path().join("payload");
    std::fs::write(&payload_path, payload()).unwrap();
    let sig = signature::sign(&key, &payload());
    let sig_path = dir.path().join("sig.der");
    std::fs::write(
        &sig_path,
        base64::engine::general_purpose::STANDARD
            .decode(&sig)
            .unwrap(),
    )
    .unwrap();

    let verify = |payload: &Path| {
        openssl(&[
            "dgst",
            "-sha256",
            "-verify",
            pub_path.to_str().unwrap(),
            "-signature",
            sig_path.to_str().unwrap(),
            payload.to_str().unwrap(),
        ])
    };
    let out = verify(&payload_path);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "Verified OK");

    let tampered = dir.path().join("tampered");
    let mut bytes = payload();
    bytes[5] ^= 1;
    std::fs::write(&tampered, bytes).unwrap();
    let out = verify(&tampered);
    // openssl dgst exits 1 for a bad signature (and for a missing file or bad key, so the text
    // says which).
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Verification failure"),
        "{out:?}"
    );
}

#[test]
fn signet_imports_openssl_keys_and_verifies_openssl_signatures() {
    let dir = tempfile::tempdir().unwrap();
    let payload_path = dir.path().join("payload");
    std::fs::write(&payload_path, payload()).unwrap();
    let p = |name: &str| dir.path().join(name).to_str().unwrap().to_string();

    // PKCS#8 (`PRIVATE KEY`) from genpkey and SEC1 (`EC PRIVATE KEY`) from ecparam.
    let made = [
        openssl(&[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            &p("pkcs8.pem"),
        ]),
        openssl(&[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            &p("sec1.pem"),
        ]),
    ];
    for out in &made {
        assert!(out.status.success(), "{out:?}");
    }
    for (private, label) in [("pkcs8.pem", "PRIVATE KEY"), ("sec1.pem", "EC PRIVATE KEY")] {
        let pem = std::fs::read(p(private)).unwrap();
        assert!(String::from_utf8_lossy(&pem).contains(&format!("BEGIN {label}")));
        let imported = SigningKey::from_pkcs8_or_sec1_pem(&pem, private).unwrap();

        let out = openssl(&[
            "pkey",
            "-in",
            &p(private),
            "-pubout",
            "-out",
            &p("openssl.pub"),
        ]);
        assert!(out.status.success(), "{out:?}");
        let public = read_public_key_file(Path::new(&p("openssl.pub"))).unwrap();
        assert_eq!(imported.public_key(), public, "{private}");
        // Same PEM text as openssl writes for the public key.
        assert_eq!(
            public.to_pem().as_bytes(),
            &std::fs::read(p("openssl.pub")).unwrap()[..]
        );

        let out = openssl(&[
            "dgst",
            "-sha256",
            "-sign",
            &p(private),
            "-out",
            &p("openssl.sig"),
            &p("payload"),
        ]);
        assert!(out.status.success(), "{out:?}");
        let sig = base64::engine::general_purpose::STANDARD
            .encode(std::fs::read(p("openssl.sig")).unwrap());
        signature::verify(&public, &payload(), &sig).unwrap();
        let other = SigningKey::generate().public_key();
        assert!(matches!(
            signature::verify(&other, &payload(), &sig),
            Err(Error::SignatureMismatch { .. })
        ));
    }

    // A P-384 key is refused with a message naming the file.
    let out = openssl(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-384",
        "-out",
        &p("p384.pem"),
    ]);
    assert!(out.status.success(), "{out:?}");
    let err =
        SigningKey::from_pkcs8_or_sec1_pem(&std::fs::read(p("p384.pem")).unwrap(), "p384.pem")
            .unwrap_err();
    assert_eq!(
        err.to_string(),
        "p384.pem: unsupported key type: ECDSA P-384 (Signet supports ECDSA P-256 keys only)"
    );
}

/// Fail (never skip) when Python or PyNaCl is missing.
fn require_pynacl() {
    let out = run(
        "python3",
        &["-c", "import hashlib, nacl.secret; hashlib.scrypt"],
        "python3 is required for this test; install it, then pip install pynacl",
    );
    assert!(
        out.status.success(),
        "PyNaCl is required for this test: pip install pynacl ({})",
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

/// Decrypts a cosign key file given as argv[1] with the password in $KEY_PASSWORD; prints the
/// PKCS#8 DER as hex. Written from formats.md §4, sharing no code with Signet.
const PY_DECRYPT: &str = r#"
import base64, hashlib, json, os, sys
import nacl.secret
text = open(sys.argv[1], "rb").read().decode().replace("\r\n", "\n")
lines = text.strip().split("\n")
assert lines[0] in ("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----",
                    "-----BEGIN ENCRYPTED COSIGN PRIVATE KEY-----"), lines[0]
doc = json.loads(base64.b64decode("".join(lines[1:-1])))
assert list(doc) == ["kdf", "cipher", "ciphertext"], list(doc)
assert doc["kdf"]["name"] == "scrypt" and doc["cipher"]["name"] == "nacl/secretbox"
params = doc["kdf"]["params"]
key = hashlib.scrypt(os.environb[b"KEY_PASSWORD"], salt=base64.b64decode(doc["kdf"]["salt"]),
                     n=params["N"], r=params["r"], p=params["p"], maxmem=512 * 1024 * 1024, dklen=32)
box = nacl.secret.SecretBox(key)
plain = box.decrypt(base64.b64decode(doc["ciphertext"]), base64.b64decode(doc["cipher"]["nonce"]))
print(params["N"], params["r"], params["p"], plain.hex())
"#;

/// Encrypts the PKCS#8 DER given as hex in argv[1] under $KEY_PASSWORD, as older cosign and
/// skopeo do (N=32768, label ENCRYPTED COSIGN PRIVATE KEY, CRLF line ends), to argv[2].
const PY_ENCRYPT: &str = r#"
import base64, hashlib, json, os, sys
import nacl.secret, nacl.utils
salt = nacl.utils.random(32)
nonce = nacl.utils.random(24)
key = hashlib.scrypt(os.environb[b"KEY_PASSWORD"], salt=salt, n=32768, r=8, p=1,
                     maxmem=512 * 1024 * 1024, dklen=32)
ct = nacl.secret.SecretBox(key).encrypt(bytes.fromhex(sys.argv[1]), nonce).ciphertext
b64 = lambda b: base64.b64encode(b).decode()
doc = {"kdf": {"name": "scrypt", "params": {"N": 32768, "r": 8, "p": 1}, "salt": b64(salt)},
       "cipher": {"name": "nacl/secretbox", "nonce": b64(nonce)}, "ciphertext": b64(ct)}
body = b64(json.dumps(doc, separators=(",", ":")).encode())
lines = ["-----BEGIN ENCRYPTED COSIGN PRIVATE KEY-----"]
lines += [body[i:i + 64] for i in range(0, len(body), 64)]
lines += ["-----END ENCRYPTED COSIGN PRIVATE KEY-----", ""]
open(sys.argv[2], "w", newline="").write("\r\n".join(lines))
"#;

fn python(script: &str, args: &[&str], password: &[u8]) -> Output {
    use std::os::unix::ffi::OsStrExt as _;
    let mut cmd = Command::new("python3");
    cmd.arg("-c").arg(script).args(args).stdin(Stdio::null());
    cmd.env("KEY_PASSWORD", std::ffi::OsStr::from_bytes(password));
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run python3 ({e}): install it, then pip install pynacl"))
}

#[test]
fn python_decrypts_signet_key_files() {
    require_pynacl();
    let dir = tempfile::tempdir().unwrap();
    for (name, password) in [("with-pw", &b"s3cret \xc3\xa9"[..]), ("empty-pw", b"")] {
        let key = SigningKey::generate();
        let (key_path, _) = write_key_pair(&dir.path().join(name), &key, password, false).unwrap();
        let out = python(PY_DECRYPT, &[key_path.to_str().unwrap()], password);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let expected = format!("65536 8 1 {}", to_hex(&key.to_pkcs8_der().unwrap()));
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            expected,
            "{name}"
        );

        // Python with a wrong password cannot open it either (nacl raises CryptoError).
        let out = python(PY_DECRYPT, &[key_path.to_str().unwrap()], b"wrong");
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("nacl.exceptions.CryptoError: Decryption failed"),
            "{err}"
        );
    }
}

#[test]
fn signet_decrypts_python_key_files() {
    require_pynacl();
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::generate();
    let path = dir.path().join("python.key");
    let der_hex = to_hex(&key.to_pkcs8_der().unwrap());
    let out = python(
        PY_ENCRYPT,
        &[&der_hex, path.to_str().unwrap()],
        b"from python",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(std::fs::read(&path)
        .unwrap()
        .windows(2)
        .any(|w| w == b"\r\n"));

    let loaded = read_private_key_file(&path, b"from python").unwrap();
    assert_eq!(loaded.key.public_key(), key.public_key());
    let err = EncryptedKeyFile::decrypt(&std::fs::read(&path).unwrap(), b"nope", "python.key")
        .unwrap_err();
    assert_eq!(err.to_string(), "wrong password for python.key");

    // And the decrypted key signs something the original public key accepts.
    let sig = signature::sign(&loaded.key, &payload());
    let public: PublicKey = key.public_key();
    signature::verify(&public, &payload(), &sig).unwrap();
}
