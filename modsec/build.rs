//! Links Debian's libmodsecurity (3.0.9). The `modsecurity` crate would do this, but it
//! requires libmodsecurity >= 3.0.13 (pkg-config check), which Debian does not ship; the
//! dozen C functions we call are declared in src/lib.rs instead.

fn main() {
    let header = std::path::Path::new("/usr/include/modsecurity/modsecurity.h");
    if !header.is_file() {
        panic!(
            "libmodsecurity not found ({} missing): apt-get install libmodsecurity-dev \
             (scripts/setup does this)",
            header.display()
        );
    }
    println!("cargo:rerun-if-changed={}", header.display());
    println!("cargo:rustc-link-lib=modsecurity");
}
