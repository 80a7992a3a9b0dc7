//! The Signet policy file as written (YAML or JSON): serde types with strict field checking, from
//! which the JSON Schema in `docs/policy.schema.json` is generated. Validation into a usable
//! [`crate::Policy`] happens in `policy.rs`.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub use crate::verdict::SignatureFormat;

/// A Signet policy document.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(title = "Signet policy")]
pub struct PolicyDocument {
    /// Format version; only `1` exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    /// Default mode for every scope that does not set its own (`enforce` when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
    /// Named trust roots.
    #[serde(default, skip_serializing_if = "StrictMap::is_empty")]
    pub keys: StrictMap<KeySpec>,
    /// Requirements for images no scope matches. Without it, such images are rejected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Requirements>,
    /// Scope pattern -> requirements; the most specific matching pattern wins.
    #[serde(default, skip_serializing_if = "StrictMap::is_empty")]
    pub scopes: StrictMap<Requirements>,
}

/// A trusted signer: a public key (exactly one of `path` and `pem`), or a certificate signer
/// (exactly one of `keyless`, `pki` and `fulcio`). Every entry is one signer: signatures by the
/// same signer count once toward `threshold`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KeySpec {
    /// File holding a PEM `PUBLIC KEY` (ECDSA P-256); relative paths are resolved by the caller
    /// against the policy file's directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The PEM `PUBLIC KEY` inline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pem: Option<String>,
    /// A keyless signer: a Fulcio certificate for this OIDC identity, verified under a Sigstore
    /// trusted root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyless: Option<KeylessSpec>,
    /// A private-PKI signer: a certificate chaining to these CA roots, for this subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pki: Option<PkiSpec>,
    /// A Fulcio signer with fixed CA certificates instead of a trusted root (containers-policy.json's
    /// `fulcio`); needs `rekorKeys`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fulcio: Option<FulcioSpec>,
    /// Rekor public keys: a signature counts only with a Rekor entry whose signed entry timestamp
    /// one of them verifies (containers-policy.json's `rekorPublicKey…`). Not with `keyless`,
    /// whose trusted root names its logs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rekor_keys: Vec<MaterialSpec>,
    /// Signature formats that count for this signer (`legacy`, `bundle`; default both). A
    /// bundle signs only the image digest, never a repository: `[legacy]` where the signed
    /// identity matters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub formats: Option<Vec<SignatureFormat>>,
    /// RFC 3339 instant after which signatures by this key no longer count (key rotation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<String>,
}

/// Trust material: exactly one of `path` and `pem`.
#[derive(
    Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MaterialSpec {
    /// A PEM file; relative paths are resolved against the policy file's directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The PEM text inline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pem: Option<String>,
}

/// A keyless signer. The subject (`subject` or `subjectPattern`) and the issuer (`issuer` or
/// `issuerPattern`) are both required; patterns must match the whole value.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KeylessSpec {
    /// The OIDC issuer exactly (`https://token.actions.githubusercontent.com`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// A pattern (RE2 syntax, anchored at both ends) the issuer must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer_pattern: Option<String>,
    /// The subject exactly: one of the certificate's email, URI or username SANs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// A pattern (anchored at both ends) one of the SANs must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_pattern: Option<String>,
    /// GitHub workflow claims that must hold too (exact values).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub github: Option<GitHubSpec>,
    /// Which embedded trusted root: `public-good` (the default) or `github`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<Instance>,
    /// A `trusted_root.json` file instead of an embedded root (relative to the policy file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trusted_root: Option<String>,
}

/// An embedded Sigstore trusted root.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Instance {
    /// Sigstore's public-good instance.
    PublicGood,
    /// GitHub's instance.
    Github,
}

/// Exact values of the GitHub workflow claims (Fulcio extensions `1.3.6.1.4.1.57264.1.2`–`.6`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GitHubSpec {
    /// `owner/repo`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// The git ref (`refs/heads/main`).
    #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
    pub git_ref: Option<String>,
    /// The commit SHA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha: Option<String>,
    /// The triggering event (`push`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<String>,
    /// The workflow name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// A private-PKI signer (containers-policy.json's `pki`): at least one of `subjectEmail` and
/// `subjectHostname`; every one given must match.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PkiSpec {
    /// The accepted root certificates (PEM).
    pub ca_roots: MaterialSpec,
    /// Intermediate certificates the chain may use (PEM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_intermediates: Option<MaterialSpec>,
    /// An email SAN the certificate must carry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_email: Option<String>,
    /// A DNS SAN the certificate must carry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_hostname: Option<String>,
}

/// A Fulcio signer with fixed CA certificates (containers-policy.json's `fulcio`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FulcioSpec {
    /// The Fulcio CA certificates (PEM).
    pub ca: MaterialSpec,
    /// The OIDC issuer Fulcio recorded, exactly.
    pub oidc_issuer: String,
    /// The email SAN, exactly.
    pub subject_email: String,
}

/// What an image must satisfy. Exactly one of `reject`, `accept` and `signed` says how signatures
/// are judged; `digest`, `config` and `mode` add to it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Requirements {
    /// Reject every image, with this message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reject: Option<String>,
    /// `true`: accept any image without signatures (insecure; lint warns).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accept: Option<bool>,
    /// Signature requirements; a list means every entry must hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed: Option<OneOrMany<Signed>>,
    /// `pinned`: refuse references that do not name a digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<DigestRule>,
    /// Checks on the image configuration (every platform of an index).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<ConfigChecks>,
    /// Attestations the image must carry (in-toto statements of a predicate type, signed by
    /// signers from `keys`, satisfying CEL conditions and the `vulnerabilities`/`slsa`
    /// shortcuts); every entry must hold.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attestations: Vec<crate::attestation::AttestationSpec>,
    /// Overrides the document's default mode for this scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
    /// How long a verdict in this scope may be reused (`30s`, `5m`, `1h`; from `10s` to `1d`).
    /// The gate keeps a verdict for the shorter of this and its own `cache.ttl_seconds`,
    /// and never past the instant a time bound of the policy (a key's `notAfter`, `maxAge`)
    /// would change it. It is also how long an allow outlives the deletion of its signature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_ttl: Option<String>,
}

/// Signature requirement: `threshold` distinct signers out of `keys` must each have a valid
/// signature, and every signer in `required` must be among them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Signed {
    /// Names of keys (from `keys`) whose signatures count.
    pub keys: Vec<String>,
    /// How many distinct keys must sign (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<u32>,
    /// Keys that must always sign.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub required: Vec<String>,
    /// Which signed identities are accepted (default `matchRepository`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<Identity>,
    /// Key/values every counted signature's payload must carry in its `optional` section.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Signature formats that count under this rule (`legacy`, `bundle`; default both). A
    /// bundle signs only the digest: `[legacy]` makes every counted signature name its
    /// repository, so `identity` always applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub formats: Option<Vec<SignatureFormat>>,
}

/// How a signature's `docker-reference` must relate to the image (containers/image semantics).
/// Written as a string for the rules without parameters, or as a one-key map
/// (`{exactRepository: {repository: …}}`) for the others.
#[derive(Debug, Clone, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum Identity {
    /// Same repository; tag and digest ignored.
    MatchRepository,
    /// Tagged image: the same reference exactly; digest image: the same repository.
    MatchRepoDigestOrExact,
    /// The same reference exactly; the signature must carry a tag or digest.
    MatchExact,
    /// The signature names exactly this reference, whatever the image is.
    #[serde(rename_all = "camelCase")]
    ExactReference {
        /// The reference (with tag or digest).
        reference: String,
    },
    /// The signature names this repository, whatever the image is.
    #[serde(rename_all = "camelCase")]
    ExactRepository {
        /// The repository.
        repository: String,
    },
    /// The image's name, with `prefix` replaced by `signedPrefix`, must match as in
    /// `matchRepoDigestOrExact` (for mirrors).
    #[serde(rename_all = "camelCase")]
    RemapIdentity {
        /// Prefix of the image name as requested.
        prefix: String,
        /// What it is replaced with before comparing with the signature.
        signed_prefix: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReferenceArg {
    reference: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RepositoryArg {
    repository: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RemapArg {
    prefix: String,
    signed_prefix: String,
}

const IDENTITY_RULES: &[&str] = &[
    "matchRepository",
    "matchRepoDigestOrExact",
    "matchExact",
    "exactReference",
    "exactRepository",
    "remapIdentity",
];

impl Serialize for Identity {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let one =
            |name: &str, fields: &[(&str, &str)]| -> BTreeMap<String, BTreeMap<String, String>> {
                let inner = fields
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
                BTreeMap::from([(name.to_string(), inner)])
            };
        let map = match self {
            Identity::MatchRepository => return serializer.serialize_str("matchRepository"),
            Identity::MatchRepoDigestOrExact => {
                return serializer.serialize_str("matchRepoDigestOrExact")
            }
            Identity::MatchExact => return serializer.serialize_str("matchExact"),
            Identity::ExactReference { reference } => {
                one("exactReference", &[("reference", reference)])
            }
            Identity::ExactRepository { repository } => {
                one("exactRepository", &[("repository", repository)])
            }
            Identity::RemapIdentity {
                prefix,
                signed_prefix,
            } => one(
                "remapIdentity",
                &[("prefix", prefix), ("signedPrefix", signed_prefix)],
            ),
        };
        let mut out = serializer.serialize_map(Some(1))?;
        for (k, v) in &map {
            out.serialize_entry(k, v)?;
        }
        out.end()
    }
}

impl<'de> Deserialize<'de> for Identity {
    // Hand-written: serde's externally tagged enums need YAML `!tags` in serde_yaml_ng, while policy
    // authors write either a plain string or a one-key map, in YAML and JSON alike.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct IdentityVisitor;
        impl<'de> Visitor<'de> for IdentityVisitor {
            type Value = Identity;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an identity rule name or a one-key map such as {exactRepository: {repository: ...}}")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Identity, E> {
                match v {
                    "matchRepository" => Ok(Identity::MatchRepository),
                    "matchRepoDigestOrExact" => Ok(Identity::MatchRepoDigestOrExact),
                    "matchExact" => Ok(Identity::MatchExact),
                    "exactReference" | "exactRepository" | "remapIdentity" => Err(E::custom(
                        format!("identity rule `{v}` needs parameters: write {{{v}: {{...}}}}"),
                    )),
                    other => Err(E::unknown_variant(other, IDENTITY_RULES)),
                }
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Identity, A::Error> {
                let Some(name) = map.next_key::<String>()? else {
                    return Err(de::Error::custom("empty identity rule map"));
                };
                let identity = match name.as_str() {
                    "exactReference" => {
                        let a: ReferenceArg = map.next_value()?;
                        Identity::ExactReference {
                            reference: a.reference,
                        }
                    }
                    "exactRepository" => {
                        let a: RepositoryArg = map.next_value()?;
                        Identity::ExactRepository {
                            repository: a.repository,
                        }
                    }
                    "remapIdentity" => {
                        let a: RemapArg = map.next_value()?;
                        Identity::RemapIdentity {
                            prefix: a.prefix,
                            signed_prefix: a.signed_prefix,
                        }
                    }
                    "matchRepository" | "matchRepoDigestOrExact" | "matchExact" => {
                        return Err(de::Error::custom(format!(
                            "identity rule `{name}` takes no parameters: write it as a plain string"
                        )));
                    }
                    other => return Err(de::Error::unknown_variant(other, IDENTITY_RULES)),
                };
                if map.next_key::<String>()?.is_some() {
                    return Err(de::Error::custom(
                        "an identity rule map has exactly one key",
                    ));
                }
                Ok(identity)
            }
        }
        deserializer.deserialize_any(IdentityVisitor)
    }
}

/// The digest rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum DigestRule {
    /// The reference must name a digest.
    Pinned,
    /// A tag is fine (the default).
    Any,
}

/// Enforcement mode.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum Mode {
    /// Deny images that fail.
    Enforce,
    /// Allow images that fail, and report.
    Warn,
    /// Allow images that fail, and only record.
    Audit,
}

/// Image configuration checks; each is off unless set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConfigChecks {
    /// Refuse images that run as root (empty User, `root`, `0`, `root:*`, `0:*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forbid_root_user: Option<bool>,
    /// Refuse images whose Env, Labels or history carry secret-shaped values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forbid_secrets: Option<bool>,
    /// Refuse images whose config `created` is older than this (`90d`, `12h`, `1w2d`), or lies
    /// more than 5 minutes in the future.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<String>,
    /// Allowed `os/arch[/variant]` platforms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platforms: Option<Vec<String>>,
}

/// A map that refuses duplicate keys (serde's maps keep the last one silently).
#[derive(Debug, Clone, PartialEq)]
pub struct StrictMap<V>(pub BTreeMap<String, V>);

impl<V> Default for StrictMap<V> {
    fn default() -> Self {
        StrictMap(BTreeMap::new())
    }
}

impl<V> StrictMap<V> {
    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<V: Serialize> Serialize for StrictMap<V> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for StrictMap<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MapVisitor<V>(PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for MapVisitor<V> {
            type Value = StrictMap<V>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = BTreeMap::new();
                while let Some(key) = map.next_key::<String>()? {
                    if out.contains_key(&key) {
                        return Err(de::Error::custom(format!("duplicate key {key:?}")));
                    }
                    let value = map.next_value()?;
                    out.insert(key, value);
                }
                Ok(StrictMap(out))
            }
        }
        deserializer.deserialize_map(MapVisitor(PhantomData))
    }
}

impl<V: JsonSchema> JsonSchema for StrictMap<V> {
    fn schema_name() -> Cow<'static, str> {
        format!("Map_of_{}", V::schema_name()).into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        <BTreeMap<String, V>>::json_schema(generator)
    }
}

/// One value or a list of them.
#[derive(Debug, Clone, PartialEq)]
pub enum OneOrMany<T> {
    /// A single value.
    One(T),
    /// A list.
    Many(Vec<T>),
}

impl<T> OneOrMany<T> {
    /// The values as a slice-like vector of references.
    pub fn items(&self) -> Vec<&T> {
        match self {
            OneOrMany::One(t) => vec![t],
            OneOrMany::Many(v) => v.iter().collect(),
        }
    }
}

impl<T: Serialize> Serialize for OneOrMany<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            OneOrMany::One(t) => t.serialize(serializer),
            OneOrMany::Many(v) => v.serialize(serializer),
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for OneOrMany<T> {
    // Hand-written instead of `#[serde(untagged)]` so errors inside an entry keep their message and
    // position rather than collapsing into "did not match any variant".
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct OneOrManyVisitor<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for OneOrManyVisitor<T> {
            type Value = OneOrMany<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map or a list of maps")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map)).map(OneOrMany::One)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                Vec::<T>::deserialize(de::value::SeqAccessDeserializer::new(seq))
                    .map(OneOrMany::Many)
            }
        }
        deserializer.deserialize_any(OneOrManyVisitor(PhantomData))
    }
}

impl<T: JsonSchema> JsonSchema for OneOrMany<T> {
    fn schema_name() -> Cow<'static, str> {
        format!("OneOrMany_{}", T::schema_name()).into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let one = generator.subschema_for::<T>();
        let many = generator.subschema_for::<Vec<T>>();
        schemars::json_schema!({ "anyOf": [one, many] })
    }
}

/// The JSON Schema of [`PolicyDocument`], pretty-printed with a trailing newline (the content of
/// `docs/policy.schema.json`).
pub fn json_schema() -> String {
    let schema = schemars::schema_for!(PolicyDocument);
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
}
