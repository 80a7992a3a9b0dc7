//! Where key passwords come from: `SIGNET_PASSWORD`, then cosign's `COSIGN_PASSWORD`, then a
//! terminal prompt. Passwords are bytes, held in memory that is zeroized on drop.

use std::io::IsTerminal as _;

use zeroize::Zeroizing;

use crate::Error;

/// Signet's own password variable, read first.
pub const SIGNET_PASSWORD_ENV: &str = "SIGNET_PASSWORD";
/// cosign's password variable, read when [`SIGNET_PASSWORD_ENV`] is not set.
pub const COSIGN_PASSWORD_ENV: &str = "COSIGN_PASSWORD";

/// The password from the environment: `SIGNET_PASSWORD` if set, else `COSIGN_PASSWORD`, else
/// `None`. A variable set to the empty string means the empty password (as with cosign), not
/// "unset".
pub fn password_from_env() -> Option<Zeroizing<Vec<u8>>> {
    [SIGNET_PASSWORD_ENV, COSIGN_PASSWORD_ENV]
        .into_iter()
        .find_map(std::env::var_os)
        .map(|value| Zeroizing::new(os_bytes(value)))
}

#[cfg(unix)]
fn os_bytes(value: std::ffi::OsString) -> Vec<u8> {
    use std::os::unix::ffi::OsStringExt as _;
    value.into_vec()
}

#[cfg(not(unix))]
fn os_bytes(value: std::ffi::OsString) -> Vec<u8> {
    value.to_string_lossy().into_owned().into_bytes()
}

/// Ask for a password on the terminal without echo; with `confirm`, ask twice and require both to
/// match. Fails with [`Error::NoPassword`] when standard input is not a terminal, so scripts get a
/// clear message instead of a hang.
pub fn prompt_password(prompt: &str, confirm: bool) -> Result<Zeroizing<Vec<u8>>, Error> {
    prompt_on(std::io::stdin().is_terminal(), prompt, confirm)
}

fn prompt_on(
    stdin_is_terminal: bool,
    prompt: &str,
    confirm: bool,
) -> Result<Zeroizing<Vec<u8>>, Error> {
    if !stdin_is_terminal {
        return Err(Error::NoPassword);
    }
    let first = Zeroizing::new(
        rpassword::prompt_password(prompt)
            .map_err(|_| Error::NoPassword)?
            .into_bytes(),
    );
    if confirm {
        let again = Zeroizing::new(
            rpassword::prompt_password("Enter password again: ")
                .map_err(|_| Error::NoPassword)?
                .into_bytes(),
        );
        if *again != *first {
            return Err(Error::PasswordMismatch);
        }
    }
    Ok(first)
}

/// The password from the environment if set, else from a prompt (see [`prompt_password`]).
pub fn password_from_env_or_prompt(
    prompt: &str,
    confirm: bool,
) -> Result<Zeroizing<Vec<u8>>, Error> {
    match password_from_env() {
        Some(password) => Ok(password),
        None => prompt_password(prompt, confirm),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    // One test touches the process environment, so the cases run in sequence inside it.
    #[test]
    fn env_order_and_empty_values() {
        std::env::remove_var(SIGNET_PASSWORD_ENV);
        std::env::remove_var(COSIGN_PASSWORD_ENV);
        assert!(password_from_env().is_none());

        std::env::set_var(COSIGN_PASSWORD_ENV, "cosign-pw");
        assert_eq!(password_from_env().unwrap().as_slice(), b"cosign-pw");

        std::env::set_var(SIGNET_PASSWORD_ENV, "signet-pw");
        assert_eq!(password_from_env().unwrap().as_slice(), b"signet-pw");

        std::env::set_var(SIGNET_PASSWORD_ENV, "");
        assert_eq!(password_from_env().unwrap().as_slice(), b"");

        std::env::remove_var(SIGNET_PASSWORD_ENV);
        std::env::set_var(COSIGN_PASSWORD_ENV, "");
        assert_eq!(password_from_env().unwrap().as_slice(), b"");
        std::env::remove_var(COSIGN_PASSWORD_ENV);

        let err = prompt_on(false, "Password: ", true).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no password: set SIGNET_PASSWORD (or COSIGN_PASSWORD) or run on a terminal"
        );
    }
}
