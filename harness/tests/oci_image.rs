//! `portcullis oci` read back by a real OCI tool: skopeo (Debian's, installed by
//! scripts/setup) reads the layout and both views of the tarball; digests and the module must
//! match. Fails, never skips, when skopeo is missing.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use sha2::{Digest as _, Sha256};

const REFERENCE: &str = "registry.example.com/security/portcullis:0.1.0";
const TAG: &str = "0.1.0";

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn portcullis(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(args)
        .output()
        .expect("portcullis runs")
}

fn oci(wasm: &Path, out: &Path, tarball: &Path) -> Output {
    portcullis(&[
        "oci".as_ref(),
        "--wasm".as_ref(),
        wasm.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
        "--tarball".as_ref(),
        tarball.as_os_str(),
        "--reference".as_ref(),
        REFERENCE.as_ref(),
    ])
}

/// The value of the `key:` line of `portcullis oci`'s output.
fn field(stdout: &str, key: &str) -> String {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(key).map(|v| v.trim().to_string()))
        .unwrap_or_else(|| panic!("no {key:?} line in:\n{stdout}"))
}

/// skopeo: `$SKOPEO` or `skopeo` on PATH; panics with how to install it.
fn skopeo() -> PathBuf {
    if let Some(p) = std::env::var_os("SKOPEO") {
        return PathBuf::from(p);
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join("skopeo"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`skopeo` is not on PATH: run scripts/setup (it installs Debian's skopeo) or \
                 `apt-get install --no-install-recommends skopeo`; the OCI image test needs a \
                 real OCI tool"
            )
        })
}

fn run_skopeo(args: &[&str]) -> Vec<u8> {
    // `--insecure-policy`: no /etc/containers/policy.json is needed for local copies.
    let out = Command::new(skopeo())
        .arg("--insecure-policy")
        .args(args)
        .output()
        .expect("skopeo runs");
    assert!(
        out.status.success(),
        "skopeo {args:?} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Unpacks the layer blob `blob` with GNU tar (compression detected by tar) into a fresh
/// directory and returns the names it holds and the bytes of `plugin.wasm`.
fn unpack_layer(blob: &Path, into: &Path) -> (Vec<String>, Vec<u8>) {
    std::fs::create_dir_all(into).expect("mkdir");
    let out = Command::new("tar")
        .arg("-xf")
        .arg(blob)
        .arg("-C")
        .arg(into)
        .output()
        .expect("tar runs");
    assert!(
        out.status.success(),
        "tar -xf {} failed: {}",
        blob.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut names: Vec<String> = std::fs::read_dir(into)
        .expect("read unpacked layer")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let module = std::fs::read(into.join("plugin.wasm")).unwrap_or_default();
    (names, module)
}

#[test]
fn skopeo_reads_the_layout_and_the_tarball_back_with_the_release_module() {
    let release = common::release_filter();
    let module = std::fs::read(release).expect("read the release module");
    let tmp = tempfile::tempdir().expect("tempdir");
    let layout = tmp.path().join("layout");
    let tarball = tmp.path().join("portcullis.tar");

    let out = oci(release, &layout, &tarball);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "portcullis oci failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let image_digest = field(&stdout, "image digest:");
    assert_eq!(field(&stdout, "module sha256:"), sha256_hex(&module));
    assert!(
        stdout.contains(&format!(
            "sha256: {}",
            image_digest.trim_start_matches("sha256:")
        )),
        "the WasmPlugin hint for oci:// urls must carry the image digest:\n{stdout}"
    );

    // 1. The layout: the manifest skopeo resolves for the tag is the one whose digest was
    //    printed, and it is the shape istio-agent's compat path takes (pkg/wasm/imagefetcher.go):
    //    not a Docker schema 2 manifest, LAST layer an OCI tar+gzip.
    let layout_ref = format!("oci:{}:{TAG}", layout.display());
    let raw = run_skopeo(&["inspect", "--raw", &layout_ref]);
    assert_eq!(format!("sha256:{}", sha256_hex(&raw)), image_digest);
    let manifest: Value = serde_json::from_slice(&raw).expect("manifest JSON");
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    let layers = manifest["layers"].as_array().expect("layers");
    assert_eq!(layers.len(), 1, "one layer: {manifest}");
    assert_eq!(
        layers[0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    assert_eq!(
        manifest["annotations"]["module.wasm.image/variant"],
        "compat"
    );
    let inspected: Value =
        serde_json::from_slice(&run_skopeo(&["inspect", &layout_ref])).expect("inspect JSON");
    assert_eq!(inspected["Digest"], image_digest.as_str());

    // skopeo copies every blob out of the layout, checking each against its digest; the
    // layer it wrote holds exactly plugin.wasm, byte for byte the release module.
    let copied = tmp.path().join("copied");
    run_skopeo(&[
        "copy",
        "--preserve-digests",
        &layout_ref,
        &format!("dir:{}", copied.display()),
    ]);
    let copied_manifest = std::fs::read(copied.join("manifest.json")).expect("copied manifest");
    assert_eq!(copied_manifest, raw, "skopeo copy changed the manifest");
    let layer_hex = layers[0]["digest"]
        .as_str()
        .and_then(|d| d.strip_prefix("sha256:"))
        .expect("layer digest");
    let (names, inside) = unpack_layer(&copied.join(layer_hex), &tmp.path().join("layer"));
    assert_eq!(names, ["plugin.wasm"]);
    assert!(
        inside == module,
        "plugin.wasm in the layer is not the release module"
    );

    // 2. The tarball as an OCI archive: the same manifest, so the same digest.
    let archive_ref = format!("oci-archive:{}:{TAG}", tarball.display());
    let raw_archive = run_skopeo(&["inspect", "--raw", &archive_ref]);
    assert_eq!(format!("sha256:{}", sha256_hex(&raw_archive)), image_digest);

    // 3. The tarball as `docker load` input (docker-archive): the same image config (its
    //    digest is the image ID Docker shows), tagged with the reference, and the module.
    // Naming the image by its RepoTag makes skopeo fail unless manifest.json tags it so.
    let docker_ref = format!("docker-archive:{}:{REFERENCE}", tarball.display());
    let config = run_skopeo(&["inspect", "--config", "--raw", &docker_ref]);
    assert_eq!(
        Some(format!("sha256:{}", sha256_hex(&config)).as_str()),
        manifest["config"]["digest"].as_str()
    );
    let from_docker = tmp.path().join("from-docker");
    run_skopeo(&[
        "copy",
        &docker_ref,
        &format!("dir:{}", from_docker.display()),
    ]);
    let docker_manifest: Value = serde_json::from_slice(
        &std::fs::read(from_docker.join("manifest.json")).expect("manifest"),
    )
    .expect("manifest JSON");
    let docker_layer = docker_manifest["layers"][0]["digest"]
        .as_str()
        .and_then(|d| d.strip_prefix("sha256:"))
        .expect("layer digest");
    let (names, inside) = unpack_layer(
        &from_docker.join(docker_layer),
        &tmp.path().join("docker-layer"),
    );
    assert_eq!(names, ["plugin.wasm"]);
    assert!(
        inside == module,
        "plugin.wasm in the docker-archive layer is not the release module"
    );

    // 4. Reproducible: the same module gives the same bytes, so the same digest.
    let again = tmp.path().join("again");
    let again_tar = tmp.path().join("again.tar");
    let out = oci(release, &again, &again_tar);
    assert!(out.status.success());
    assert_eq!(
        field(&String::from_utf8_lossy(&out.stdout), "image digest:"),
        image_digest
    );
    assert!(std::fs::read(&again_tar).expect("tar") == std::fs::read(&tarball).expect("tar"));
}

#[test]
fn bad_input_is_refused_with_where_and_why() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let not_wasm = tmp.path().join("plugin.wasm");
    std::fs::write(&not_wasm, b"#!/bin/sh\necho hi\n").expect("write");
    let out = oci(&not_wasm, &tmp.path().join("l"), &tmp.path().join("t.tar"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("plugin.wasm") && stderr.contains("not a WebAssembly binary module"));
    assert!(!tmp.path().join("l").exists() && !tmp.path().join("t.tar").exists());

    // A directory that is not an OCI layout is never written into.
    let wasm = tmp.path().join("m.wasm");
    std::fs::write(&wasm, b"\0asm\x01\0\0\0").expect("write");
    let busy = tmp.path().join("busy");
    std::fs::create_dir(&busy).expect("mkdir");
    std::fs::write(busy.join("notes.txt"), b"mine").expect("write");
    let out = oci(&wasm, &busy, &tmp.path().join("t.tar"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("not an OCI image layout"), "{stderr}");
    assert!(!busy.join("index.json").exists());

    // A bad reference names the part that is wrong.
    let out = portcullis(&[
        "oci".as_ref(),
        "--wasm".as_ref(),
        wasm.as_os_str(),
        "--out".as_ref(),
        tmp.path().join("x").as_os_str(),
        "--reference".as_ref(),
        "Registry.example.com/Portcullis:1".as_ref(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("\"Portcullis\""), "{stderr}");
}

#[test]
fn a_second_tag_is_added_to_an_existing_layout() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let layout = tmp.path().join("layout");
    let a = tmp.path().join("a.wasm");
    let b = tmp.path().join("b.wasm");
    std::fs::write(&a, b"\0asm\x01\0\0\0").expect("write");
    std::fs::write(&b, b"\0asm\x01\0\0\0\0").expect("write");
    let run = |wasm: &Path, reference: &str| {
        let out = portcullis(&[
            "oci".as_ref(),
            "--wasm".as_ref(),
            wasm.as_os_str(),
            "--out".as_ref(),
            layout.as_os_str(),
            "--reference".as_ref(),
            reference.as_ref(),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        field(&String::from_utf8_lossy(&out.stdout), "image digest:")
    };
    let one = run(&a, "p:1");
    let two = run(&b, "p:2");
    let one_again = run(&b, "p:1");
    assert_ne!(one, two);
    assert_eq!(two, one_again);
    let index: Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).expect("index"))
            .expect("index JSON");
    let entries: Vec<(String, String)> = index["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .map(|m| {
            (
                m["annotations"]["org.opencontainers.image.ref.name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                m["digest"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(
        entries,
        [("2".to_string(), two.clone()), ("1".to_string(), two)]
    );
}
