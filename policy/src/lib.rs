//! `signet-policy`: the trust policy. Turns a policy document into a validated policy and evaluates
//! it against evidence gathered by the verifier; it does no I/O and never reads the clock.
