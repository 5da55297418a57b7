//! `portcullis oci`: packages a filter module as the one-layer image Istio's `WasmPlugin`
//! pulls, written as an OCI image layout directory and a `docker save`-style tarball.
//!
//! Format: the Wasm image spec's *compat* variant with OCI media types (an OCI manifest whose
//! only layer is an `application/vnd.oci.image.layer.v1.tar+gzip` holding `plugin.wasm`,
//! annotated `module.wasm.image/variant=compat`). istio-agent (pkg/wasm/imagefetcher.go)
//! takes any manifest that is not a Docker schema 2 one down this path: it reads the LAST
//! layer, requires exactly that media type, gunzips and untars it, and returns the first
//! entry whose base name is `plugin.wasm`. It is also what `buildah`/`docker build` of
//! `FROM scratch` + `COPY plugin.wasm ./` produce, so registries and image tools handle it
//! like any container image. The *oci* artifact variant was not chosen: Istio requires it
//! to have exactly two layers (the raw module plus a runtime-config layer), registries and
//! `docker` treat its custom media types as foreign, and it gains nothing here.
//!
//! Output is reproducible: the same module and reference give byte-identical blobs, so the
//! same image digest (tar entries and gzip header carry no time stamps; the image config
//! has no `created`), and a rebuild of an unchanged module does not make gateways pull a
//! "new" image.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

/// The file name istio-agent looks for in the layer (and the compat spec requires).
pub const MODULE_FILE: &str = "plugin.wasm";
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
pub const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
/// The only layer media type Istio's compat path accepts in an OCI manifest.
pub const LAYER_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// The compat spec's manifest annotation (Istio does not check it; other Wasm runtimes do).
pub const VARIANT_ANNOTATION: (&str, &str) = ("module.wasm.image/variant", "compat");
/// The index annotation `skopeo`/`umoci` resolve `oci:DIR:TAG` with.
const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";
/// The index annotation `docker load` (containerd image store) names the image with.
const CONTAINERD_NAME_ANNOTATION: &str = "io.containerd.image.name";

/// What to package.
pub struct ImageRequest<'a> {
    /// The module, as built (`scripts/build-filter`).
    pub module: &'a [u8],
    /// Where the image will be pushed, `[registry/]path[:tag]` (tag defaults to `latest`).
    pub reference: &'a str,
}

/// A content-addressed blob.
pub struct Blob {
    pub media_type: &'static str,
    pub bytes: Vec<u8>,
}

impl Blob {
    fn new(media_type: &'static str, bytes: Vec<u8>) -> Blob {
        Blob { media_type, bytes }
    }

    /// `sha256:<hex>`.
    pub fn digest(&self) -> String {
        format!("sha256:{}", sha256_hex(&self.bytes))
    }

    fn descriptor(&self) -> Value {
        json!({"mediaType": self.media_type, "digest": self.digest(), "size": self.bytes.len()})
    }
}

/// The packaged image.
pub struct Image {
    pub reference: Reference,
    pub config: Blob,
    pub layer: Blob,
    pub manifest: Blob,
    /// `sha256` of the module itself (hex).
    pub module_sha256: String,
}

/// A parsed image reference, `[registry/]repository[:tag]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub repository: String,
    pub tag: String,
}

impl Reference {
    /// Parses `[registry[:port]/]path[:tag]` as the Docker distribution grammar allows
    /// (lower-case path components of `[a-z0-9]` separated by `.`, `_`, `__` or `-`; a tag
    /// of `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`). Digests (`@sha256:`) are refused: the
    /// digest is what this command computes.
    pub fn parse(s: &str) -> Result<Reference> {
        if s.contains('@') {
            bail!("reference {s:?}: give a tag, not a digest (the digest is computed here)");
        }
        let (repository, tag) = match s.rsplit_once(':') {
            // A ':' before the last '/' is a registry port, not a tag.
            Some((repo, tag)) if !tag.contains('/') => (repo, tag),
            _ => (s, "latest"),
        };
        let tag_ok = tag.len() <= 128
            && tag.chars().enumerate().all(|(i, c)| {
                c.is_ascii_alphanumeric() || c == '_' || (i > 0 && (c == '.' || c == '-'))
            });
        if tag.is_empty() || !tag_ok {
            bail!("reference {s:?}: tag {tag:?} is not [A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}}");
        }
        let mut components = repository.split('/').collect::<Vec<_>>();
        // A first component with a '.' or ':' or equal to `localhost` is a registry host.
        if components.len() > 1
            && (components[0].contains(['.', ':']) || components[0] == "localhost")
        {
            let host = components.remove(0);
            let host_ok = host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'));
            if !host_ok {
                bail!("reference {s:?}: registry {host:?} is not a host[:port]");
            }
        }
        for c in &components {
            if !path_component_ok(c) {
                bail!(
                    "reference {s:?}: path component {c:?} is not lower-case [a-z0-9] \
                     separated by '.', '_', '__' or '-'"
                );
            }
        }
        Ok(Reference {
            repository: repository.to_string(),
            tag: tag.to_string(),
        })
    }
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.repository, self.tag)
    }
}

fn path_component_ok(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: &u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !b.first().is_some_and(alnum) || !b.last().is_some_and(alnum) {
        return false;
    }
    // Separators: '.', '_', "__", or runs of '-'; never two different ones in a row.
    let mut prev_sep: Option<u8> = None;
    let mut run = 0;
    for x in b {
        if alnum(x) {
            prev_sep = None;
            run = 0;
            continue;
        }
        if !matches!(x, b'.' | b'_' | b'-') {
            return false;
        }
        match prev_sep {
            None => {}
            Some(p) if p == *x && (*x == b'-' || (*x == b'_' && run < 2)) => {}
            Some(_) => return false,
        }
        prev_sep = Some(*x);
        run += 1;
    }
    true
}

/// Lowercase hex `sha256` of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(64);
    for b in Sha256::digest(bytes) {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Builds the image's blobs. Refuses input that is not a WebAssembly binary module (the
/// check istio-agent makes after pulling, made here before anything is published).
pub fn build(req: &ImageRequest<'_>) -> Result<Image> {
    let reference = Reference::parse(req.reference)?;
    match req.module {
        [0x00, 0x61, 0x73, 0x6d, 1, 0, 0, 0, ..] => {}
        [0x00, 0x61, 0x73, 0x6d, ..] => {
            bail!("not a WebAssembly version 1 binary module (a component or a future version?)")
        }
        _ => bail!("not a WebAssembly binary module (no \\0asm magic at byte 0)"),
    }
    let layer_tar = tar_of(&[(MODULE_FILE, req.module)])?;
    let diff_id = format!("sha256:{}", sha256_hex(&layer_tar));
    let layer = Blob::new(LAYER_MEDIA_TYPE, gzip(&layer_tar)?);
    // Platform linux/amd64 although a Wasm module has none: it is what `docker build` of
    // `FROM scratch` records, and `docker load` refuses an OS it does not run. Istio reads
    // neither field.
    let config = json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    });
    let config = Blob::new(CONFIG_MEDIA_TYPE, to_json(&config)?);
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": config.descriptor(),
        "layers": [layer.descriptor()],
        "annotations": {VARIANT_ANNOTATION.0: VARIANT_ANNOTATION.1},
    });
    let manifest = Blob::new(MANIFEST_MEDIA_TYPE, to_json(&manifest)?);
    Ok(Image {
        reference,
        config,
        layer,
        manifest,
        module_sha256: sha256_hex(req.module),
    })
}

impl Image {
    /// The index entry naming this image's manifest.
    fn index_entry(&self) -> Value {
        let mut d = self.manifest.descriptor();
        d["annotations"] = json!({
            REF_NAME_ANNOTATION: self.reference.tag,
            CONTAINERD_NAME_ANNOTATION: self.reference.to_string(),
        });
        d
    }

    fn blobs(&self) -> [&Blob; 3] {
        [&self.config, &self.layer, &self.manifest]
    }

    fn index(&self, others: Vec<Value>) -> Result<Vec<u8>> {
        let mut manifests = others;
        manifests.push(self.index_entry());
        to_json(&json!({"schemaVersion": 2, "mediaType": INDEX_MEDIA_TYPE, "manifests": manifests}))
    }

    /// `docker load`'s `manifest.json` (Docker 25+ `docker save` writes it next to an OCI
    /// layout in the same tar, pointing into `blobs/`; older Docker reads it too).
    fn docker_manifest(&self) -> Result<Vec<u8>> {
        to_json(&json!([{
            "Config": blob_path(&self.config),
            "RepoTags": [self.reference.to_string()],
            "Layers": [blob_path(&self.layer)],
        }]))
    }

    /// Writes (or adds to) the OCI image layout at `dir`. An existing layout keeps its other
    /// images; an entry with the same tag is replaced. A directory that is neither empty
    /// nor a layout is refused rather than written into.
    pub fn write_layout(&self, dir: &Path) -> Result<()> {
        let mut others = Vec::new();
        if dir.exists() {
            let layout_marker = dir.join("oci-layout");
            if layout_marker.is_file() {
                others = existing_entries(&dir.join("index.json"), &self.reference.tag)?;
            } else if std::fs::read_dir(dir)
                .with_context(|| format!("{}: cannot read", dir.display()))?
                .next()
                .is_some()
            {
                bail!(
                    "{}: exists, is not empty and is not an OCI image layout (no oci-layout file); \
                     remove it or choose another --out",
                    dir.display()
                );
            }
        }
        let blob_dir = dir.join("blobs/sha256");
        std::fs::create_dir_all(&blob_dir)
            .with_context(|| format!("{}: cannot create", blob_dir.display()))?;
        for blob in self.blobs() {
            write_file(&dir.join(blob_path(blob)), &blob.bytes)?;
        }
        write_file(&dir.join("oci-layout"), OCI_LAYOUT)?;
        write_file(&dir.join("index.json"), &self.index(others)?)
    }

    /// Writes the tarball: an OCI image layout (for `skopeo copy oci-archive:FILE:TAG`) plus
    /// `manifest.json` (for `docker load -i FILE` and `skopeo copy docker-archive:FILE`),
    /// the shape Docker 25+ `docker save` writes.
    pub fn write_tarball(&self, path: &Path) -> Result<()> {
        let mut entries: Vec<(String, Vec<u8>)> = vec![
            ("oci-layout".into(), OCI_LAYOUT.to_vec()),
            ("index.json".into(), self.index(Vec::new())?),
            ("manifest.json".into(), self.docker_manifest()?),
        ];
        for blob in self.blobs() {
            entries.push((blob_path(blob), blob.bytes.clone()));
        }
        let entries: Vec<(&str, &[u8])> = entries
            .iter()
            .map(|(n, b)| (n.as_str(), b.as_slice()))
            .collect();
        write_file(path, &tar_of(&entries)?)
    }

    /// What to put in a `WasmPlugin` (stdout of `portcullis oci`).
    pub fn summary(&self, layout: &Path, tarball: Option<&Path>) -> String {
        let digest = self.manifest.digest();
        let hex = digest.trim_start_matches("sha256:");
        let mut s = String::new();
        let _ = writeln!(
            s,
            "oci layout:    {} (tag {})",
            layout.display(),
            self.reference.tag
        );
        if let Some(t) = tarball {
            let _ = writeln!(s, "tarball:       {}", t.display());
        }
        let _ = writeln!(s, "image:         {}", self.reference);
        let _ = writeln!(s, "image digest:  {digest}");
        let _ = writeln!(s, "module sha256: {}", self.module_sha256);
        let _ = writeln!(
            s,
            "# Push without changing the digest:\n\
             #   skopeo copy --preserve-digests oci:{}:{} docker://{}\n\
             # WasmPlugin for the pushed image (for oci:// urls istio-agent checks sha256\n\
             # against the image manifest digest):\n\
             #   url: oci://{}@{digest}\n\
             #   sha256: {hex}\n\
             # For the module served at an http(s):// or file:// url, sha256 is the module's:\n\
             #   sha256: {}",
            layout.display(),
            self.reference.tag,
            self.reference,
            self.reference.repository,
            self.module_sha256,
        );
        s
    }
}

const OCI_LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

fn blob_path(blob: &Blob) -> String {
    format!("blobs/sha256/{}", sha256_hex(&blob.bytes))
}

/// The entries of an existing layout's index other than the one tagged `tag`.
fn existing_entries(index: &Path, tag: &str) -> Result<Vec<Value>> {
    let text = std::fs::read(index).with_context(|| format!("{}: cannot read", index.display()))?;
    let value: Value =
        serde_json::from_slice(&text).with_context(|| format!("{}: not JSON", index.display()))?;
    let Some(manifests) = value.get("manifests").and_then(Value::as_array) else {
        bail!("{}: no \"manifests\" array", index.display());
    };
    Ok(manifests
        .iter()
        .filter(|m| {
            m.pointer(&format!(
                "/annotations/{}",
                REF_NAME_ANNOTATION.replace('/', "~1")
            ))
            .and_then(Value::as_str)
                != Some(tag)
        })
        .cloned()
        .collect())
}

fn to_json(v: &Value) -> Result<Vec<u8>> {
    serde_json::to_vec(v).context("serializing JSON")
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("{}: cannot create", parent.display()))?;
    }
    std::fs::write(path, bytes).with_context(|| format!("{}: cannot write", path.display()))
}

/// A POSIX (ustar) tar of regular files, in the given order, with their parent directories;
/// owner root, mode 0644 (0755 for directories), time stamp 0, so equal input gives equal
/// bytes.
fn tar_of(files: &[(&str, &[u8])]) -> Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut dirs = BTreeMap::new();
    for (name, bytes) in files {
        let mut parent = PathBuf::new();
        let components: Vec<_> = Path::new(name).components().collect();
        for c in components.iter().take(components.len().saturating_sub(1)) {
            parent.push(c);
            if dirs.insert(parent.clone(), ()).is_none() {
                let mut h = header(tar::EntryType::Directory, 0o755, 0);
                builder
                    .append_data(&mut h, format!("{}/", parent.display()), std::io::empty())
                    .context("building tar")?;
            }
        }
        let mut h = header(tar::EntryType::Regular, 0o644, bytes.len() as u64);
        builder
            .append_data(&mut h, name, *bytes)
            .context("building tar")?;
    }
    builder.into_inner().context("building tar")
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h
}

/// gzip with an empty header (no name, time stamp 0), so equal input gives equal bytes.
fn gzip(bytes: &[u8]) -> Result<Vec<u8>> {
    let mut enc = flate2::GzBuilder::new().write(Vec::new(), flate2::Compression::best());
    enc.write_all(bytes).context("gzip")?;
    enc.finish().context("gzip")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse_like_docker() {
        let r = Reference::parse("registry.example.com:5000/security/portcullis:0.1.0").unwrap();
        assert_eq!(
            r.repository,
            "registry.example.com:5000/security/portcullis"
        );
        assert_eq!(r.tag, "0.1.0");
        let r = Reference::parse("localhost:5000/portcullis").unwrap();
        assert_eq!(
            (r.repository.as_str(), r.tag.as_str()),
            ("localhost:5000/portcullis", "latest")
        );
        assert_eq!(
            Reference::parse("a__b-c/e---f.g:T_1.x-").unwrap().tag,
            "T_1.x-"
        );
        for bad in [
            "Portcullis:1",
            "portcullis:",
            "portcullis:-x",
            "portcullis@sha256:00",
            "a/_b",
            "a/b_",
            "a___b",
            "a.-b",
            "",
            "reg.example.com//x",
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn non_wasm_input_is_refused_with_why() {
        let err = |m: &[u8]| {
            build(&ImageRequest {
                module: m,
                reference: "p:1",
            })
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
        };
        assert!(err(b"hello world").contains("no \\0asm magic"));
        assert!(err(b"\0asm\x0d\0\x01\0").contains("version 1"));
        assert!(err(b"").contains("no \\0asm magic"));
    }

    #[test]
    fn the_image_is_the_compat_variant_and_reproducible() {
        let module = b"\0asm\x01\0\0\0";
        let req = ImageRequest {
            module,
            reference: "r.example/p:1",
        };
        let a = build(&req).unwrap();
        let b = build(&req).unwrap();
        assert_eq!(a.manifest.bytes, b.manifest.bytes);
        assert_eq!(a.layer.bytes, b.layer.bytes);
        let m: Value = serde_json::from_slice(&a.manifest.bytes).unwrap();
        assert_eq!(m["mediaType"], MANIFEST_MEDIA_TYPE);
        assert_eq!(m["layers"].as_array().map(Vec::len), Some(1));
        assert_eq!(m["layers"][0]["mediaType"], LAYER_MEDIA_TYPE);
        assert_eq!(m["layers"][0]["digest"], a.layer.digest());
        assert_eq!(m["config"]["digest"], a.config.digest());
        assert_eq!(m["annotations"]["module.wasm.image/variant"], "compat");
        // A different module is a different image.
        let c = build(&ImageRequest {
            module: b"\0asm\x01\0\0\0\0",
            reference: "r.example/p:1",
        })
        .unwrap();
        assert_ne!(a.manifest.digest(), c.manifest.digest());
    }
}
