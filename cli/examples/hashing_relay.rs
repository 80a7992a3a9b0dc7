//! The cheapest possible verifying proxy, as a floor for `bench/gate.sh` (not a test, not a
//! product): a plain TCP relay that SHA-256-hashes every byte coming back from upstream on its
//! way to the client, with 1 MiB buffers, blocking I/O and a thread per direction — no HTTP
//! parsing, no allocation per chunk, no policy. What the gate costs above this relay is the price
//! of being a registry proxy; what this relay costs above a plain relay (socat) is the price of
//! hashing, which any proxy that checks digests must pay.
//!
//! Usage: `hashing_relay LISTEN_ADDR UPSTREAM_ADDR` (both `127.0.0.1:PORT`); runs until killed.

#![allow(clippy::print_stdout, clippy::print_stderr)] // a program's output, not a library's

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};

use sha2::Digest as _;

const BUFFER: usize = 1 << 20;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [listen, upstream] = args.as_slice() else {
        eprintln!("usage: hashing_relay LISTEN_ADDR UPSTREAM_ADDR");
        std::process::exit(2);
    };
    let listener = match TcpListener::bind(listen) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("hashing_relay: cannot listen on {listen}: {e}");
            std::process::exit(2);
        }
    };
    for client in listener.incoming().flatten() {
        let upstream = upstream.clone();
        std::thread::spawn(move || {
            if let Err(e) = relay(client, &upstream) {
                eprintln!("hashing_relay: {e}");
            }
        });
    }
}

fn relay(client: TcpStream, upstream: &str) -> std::io::Result<()> {
    let server = TcpStream::connect(upstream)?;
    let (mut client_in, mut server_out) = (client.try_clone()?, server.try_clone()?);
    let requests = std::thread::spawn(move || {
        let _ = std::io::copy(&mut client_in, &mut server_out);
        let _ = server_out.shutdown(Shutdown::Write);
    });
    let (mut server_in, mut client_out) = (server, client);
    let mut buffer = vec![0u8; BUFFER];
    let mut hasher = sha2::Sha256::new();
    loop {
        let n = server_in.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        client_out.write_all(&buffer[..n])?;
    }
    let _ = client_out.shutdown(Shutdown::Write);
    let _ = requests.join();
    // The digest is what a verifying proxy would compare; printing nothing keeps the relay quiet.
    std::hint::black_box(hasher.finalize());
    Ok(())
}
