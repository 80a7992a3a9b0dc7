//! `signet-verifier`: the engine that resolves an image, checks every digest, verifies its
//! signatures and applies the policy; also signing and signature-preserving copy.
