//! Kubernetes AdmissionReview bodies as the admission webhook receives them: reading the body
//! (the typed, borrowing parse `/validate` uses), the pod-spec image extraction from a parsed
//! `Value` and the digest-pinning patch must never panic on any input, and both readings of the
//! same body must find the same images.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use signet_gate::{extract_images, pin_patch, review_images};

fuzz_target!(|data: &[u8]| {
    let from_body = review_images(data);
    let Ok(review) = serde_json::from_slice::<Value>(data) else {
        // The webhook's reader checks what a `Value` parse checks (UTF-8, numbers, depth):
        // a body it reads is JSON.
        assert!(
            from_body.is_err(),
            "read a body that is not JSON: {from_body:?}"
        );
        return;
    };
    let operation = review
        .pointer("/request/operation")
        .and_then(Value::as_str)
        .unwrap_or("");
    if let (Ok(images), false) = (
        &from_body,
        matches!(operation, "DELETE" | "CONNECT" | "UPDATE"),
    ) {
        let kind = review
            .pointer("/request/kind/kind")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let object = review.pointer("/request/object").unwrap_or(&Value::Null);
        assert_eq!(
            Ok(images.clone()),
            extract_images(kind, object),
            "the body and its Value name different images"
        );
    }
    let kind = review
        .pointer("/request/kind/kind")
        .and_then(Value::as_str)
        .unwrap_or("Pod");
    let object = review.pointer("/request/object").unwrap_or(&review);
    if let Ok(images) = extract_images(kind, object) {
        for image in &images {
            // The gate judges each image string as a reference.
            let _ = image.image.parse::<signet_oci::Reference>();
        }
        let _ = pin_patch(&images, &[]);
    }
});
