//! `cargo xtask image`: the container image of both programs (`deploy/container/Containerfile`,
//! `FROM scratch`): static release binaries (glibc linked statically, `+crt-static`), checked to
//! have no program interpreter, copied into the build context `target/image/`, then built with
//! podman as `localhost/tcpcopy:VERSION`, and run once (`/tcpcopy --version`; where podman may not
//! run containers, both binaries are copied out of the image and run on the host instead). Without podman the
//! context is left ready and the command says how to install it.

use std::path::Path;

use anyhow::{Context as _, bail, ensure};

use crate::sh;

const TARGET: &str = "x86_64-unknown-linux-gnu";
const CONTEXT: &str = "target/image";

/// The image's name.
pub fn name() -> String {
    format!("localhost/tcpcopy:{}", env!("CARGO_PKG_VERSION"))
}

/// Whether the ELF file `bytes` asks for a program interpreter (a dynamic loader): a static
/// binary does not. `None` if it is no 64-bit little-endian ELF.
pub fn has_interpreter(bytes: &[u8]) -> Option<bool> {
    const PT_INTERP: u32 = 3;
    let u16_at = |o: usize| Some(u16::from_le_bytes(bytes.get(o..o + 2)?.try_into().ok()?));
    let u32_at = |o: usize| Some(u32::from_le_bytes(bytes.get(o..o + 4)?.try_into().ok()?));
    let u64_at = |o: usize| Some(u64::from_le_bytes(bytes.get(o..o + 8)?.try_into().ok()?));
    if bytes.get(..4)? != b"\x7fELF" || bytes.get(4) != Some(&2) || bytes.get(5) != Some(&1) {
        return None;
    }
    let phoff = usize::try_from(u64_at(0x20)?).ok()?;
    let phentsize = usize::from(u16_at(0x36)?);
    let phnum = usize::from(u16_at(0x38)?);
    for i in 0..phnum {
        if u32_at(phoff + i * phentsize)? == PT_INTERP {
            return Some(true);
        }
    }
    Some(false)
}

pub fn image() -> anyhow::Result<()> {
    sh::step("static release binaries (glibc linked statically)");
    sh::run_env(
        "cargo",
        &[
            "build",
            "--release",
            "-p",
            "tcpcopy",
            "--bins",
            "--target",
            TARGET,
        ],
        &[(
            "CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS",
            "-C target-feature=+crt-static",
        )],
    )?;
    std::fs::create_dir_all(CONTEXT)?;
    for bin in ["tcpcopy", "intercept"] {
        let from = Path::new("target").join(TARGET).join("release").join(bin);
        let bytes = std::fs::read(&from).with_context(|| format!("{}", from.display()))?;
        ensure!(
            has_interpreter(&bytes) == Some(false),
            "{} is not a static binary (it names a program interpreter)",
            from.display()
        );
        std::fs::write(Path::new(CONTEXT).join(bin), &bytes)?;
        set_executable(&Path::new(CONTEXT).join(bin))?;
    }
    std::fs::copy(
        "deploy/container/Containerfile",
        Path::new(CONTEXT).join("Containerfile"),
    )?;
    if let Err(e) = tcpcopy_testbed::tools::require("podman") {
        bail!(
            "the build context is ready in {CONTEXT}/, but no image was built: {e:#}; then run `cargo xtask image` again (or: podman build -t {} {CONTEXT})",
            name()
        );
    }
    let name = name();
    sh::step(&format!("podman build -t {name}"));
    sh::run(
        "podman",
        &[
            "build",
            "-f",
            &format!("{CONTEXT}/Containerfile"),
            "-t",
            &name,
            CONTEXT,
        ],
    )?;
    check_contents(&name)?;
    let listing = sh::stdout(
        "podman",
        &["image", "inspect", "--format", "{{.Size}}", &name],
    )?;
    println!("image {name} built ({} bytes)", listing.trim());
    Ok(())
}

/// Runs `/tcpcopy --version` in the image; where this machine does not let podman run a
/// container (crun cannot set its resource limits in some sandboxes), copies both binaries out
/// of a created (not started) container and runs them here instead, saying so.
fn check_contents(name: &str) -> anyhow::Result<()> {
    sh::step(&format!("podman run --rm --network none {name} --version"));
    match sh::stdout(
        "podman",
        &["run", "--rm", "--network", "none", name, "--version"],
    ) {
        Ok(v) => {
            ensure!(
                v.starts_with("tcpcopy "),
                "the image's tcpcopy answered {v:?}"
            );
            println!("{}", v.trim());
            return Ok(());
        }
        Err(e) => println!(
            "podman cannot run containers on this machine ({e:#}); checking the image's binaries outside it"
        ),
    }
    let id = sh::stdout("podman", &["create", name])?.trim().to_owned();
    let out = Path::new(CONTEXT).join("from-image");
    std::fs::create_dir_all(&out)?;
    let copied = ["tcpcopy", "intercept"].iter().try_for_each(|bin| {
        let to = out.join(bin);
        let to = to.to_str().context("utf-8 path")?;
        sh::run("podman", &["cp", &format!("{id}:/{bin}"), to])?;
        let v = sh::stdout(to, &["--version"])?;
        ensure!(
            v.starts_with(&format!("{bin} ")),
            "the image's /{bin} answered {v:?}"
        );
        println!("/{bin} from the image: {}", v.trim());
        Ok(())
    });
    sh::run("podman", &["rm", &id])?;
    copied
}

fn set_executable(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::has_interpreter;

    #[test]
    fn a_dynamic_binary_names_its_interpreter() {
        let this = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        assert_eq!(
            has_interpreter(&this),
            Some(true),
            "the test binary is dynamic"
        );
        assert_eq!(has_interpreter(b"not an elf"), None);
        assert_eq!(has_interpreter(&this[..70]), None, "cut short");
    }
}
