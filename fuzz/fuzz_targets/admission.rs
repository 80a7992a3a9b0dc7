//! Kubernetes AdmissionReview bodies as the admission webhook receives them: the pod-spec image
//! extraction and the digest-pinning patch must never panic on any JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use signet_gate::{extract_images, pin_patch};

fuzz_target!(|data: &[u8]| {
    let Ok(review) = serde_json::from_slice::<Value>(data) else {
        return;
    };
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
