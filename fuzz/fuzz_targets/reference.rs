//! Image references and locations as users and policies write them: parsing must never panic, and
//! a parsed reference must print to text that parses back to the same reference.
#![no_main]

use libfuzzer_sys::fuzz_target;
use signet_oci::{ImageLocation, Reference};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(reference) = text.parse::<Reference>() {
        let printed = reference.to_string();
        let again: Reference = printed
            .parse()
            .unwrap_or_else(|e| panic!("{printed:?} (from {text:?}) does not parse back: {e}"));
        assert_eq!(again, reference, "round trip of {text:?} via {printed:?}");
        let _ = reference.without_tag_or_digest();
    }
    let _ = Reference::parse_as_written(text);
    let _ = text.parse::<ImageLocation>();
});
