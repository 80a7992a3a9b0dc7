//! Shared harness: a real registry on a free loopback port, and helpers to run the binary.
