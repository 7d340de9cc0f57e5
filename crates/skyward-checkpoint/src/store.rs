//! The stores themselves (the I/O edge): S3 (and S3-compatible servers),
//! Azure Blob, Google Cloud Storage and local directories through the
//! `object_store` crate; writing, reading, listing and copying
//! checkpoints in the layout of [`crate::layout`]. Memory stays bounded:
//! files are streamed in parts, never held whole.

use crate::layout::{self, FileEntry, Manifest};
use crate::plan::Reach;
use futures_util::StreamExt;
use object_store::path::Path as ObjPath;
use object_store::{ClientOptions, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig};
use skyward_model::{Scheme, StoreUri};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// The variables a run (and `skyward checkpoint`) reads its store from:
/// the location, then the credentials under the names the providers'
/// own tools use.
pub const ENV_URI: &str = "SKYWARD_CHECKPOINT_URI";
pub const ENV_STEP: &str = "SKYWARD_CHECKPOINT_STEP";
pub const ENV_EVERY_S: &str = "SKYWARD_CHECKPOINT_EVERY_S";
const AWS_ACCESS_KEY_ID: &str = "AWS_ACCESS_KEY_ID";
const AWS_SECRET_ACCESS_KEY: &str = "AWS_SECRET_ACCESS_KEY";
const AWS_REGION: &str = "AWS_REGION";
const AWS_ENDPOINT_URL: &str = "AWS_ENDPOINT_URL";
const AZURE_ACCOUNT: &str = "AZURE_STORAGE_ACCOUNT";
const AZURE_KEY: &str = "AZURE_STORAGE_KEY";
const AZURE_ENDPOINT: &str = "AZURE_STORAGE_ENDPOINT";
const GOOGLE_KEY: &str = "GOOGLE_SERVICE_ACCOUNT_KEY";
const GOOGLE_ENDPOINT: &str = "GOOGLE_STORAGE_ENDPOINT";

/// How long one request to a store may take, and how long a request is
/// retried (a cut network fails in bounded time).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const RETRY_TIMEOUT: Duration = Duration::from_secs(30);
/// Objects a listing of one location may return.
pub const LIST_MAX: usize = 100_000;

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("{0}")]
    Config(String),
    #[error("{uri}: {op}: {why}")]
    Store {
        uri: String,
        op: String,
        why: String,
    },
    #[error("{}: {why}", path.display())]
    Io { path: PathBuf, why: String },
    #[error("{uri}: checkpoint {step}: {why}")]
    Manifest { uri: String, step: u64, why: String },
    #[error("{uri}: no checkpoint{}", step.map(|s| format!(" {s}")).unwrap_or_default())]
    NotFound { uri: String, step: Option<u64> },
}

fn io(path: &Path, e: impl std::fmt::Display) -> CheckpointError {
    CheckpointError::Io {
        path: path.to_path_buf(),
        why: e.to_string(),
    }
}

/// A store the server knows (its config's `object_stores:`): the
/// locations it covers, where it is, its credentials, and which
/// providers' sites can reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    pub uri: StoreUri,
    /// S3-compatible, Azurite or fake-GCS address (`http://127.0.0.1:9000`;
    /// for Azure the account URL). Plain HTTP only when given so.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub account: Option<String>,
    pub access_key: Option<String>,
    /// GCS service account key (JSON).
    pub service_account_key: Option<String>,
    pub reach: Reach,
}

impl StoreConfig {
    /// A store with no credentials (local directories).
    pub fn bare(uri: StoreUri) -> StoreConfig {
        StoreConfig {
            uri,
            endpoint: None,
            region: None,
            access_key_id: None,
            secret_access_key: None,
            account: None,
            access_key: None,
            service_account_key: None,
            reach: Reach::All,
        }
    }

    /// The store a run was handed, from its environment (`skyward
    /// checkpoint` inside a run).
    pub fn from_env(uri: StoreUri, env: &BTreeMap<String, String>) -> StoreConfig {
        let get = |k: &str| env.get(k).filter(|v| !v.is_empty()).cloned();
        let mut c = StoreConfig::bare(uri);
        match c.uri.scheme {
            Scheme::S3 => {
                c.access_key_id = get(AWS_ACCESS_KEY_ID);
                c.secret_access_key = get(AWS_SECRET_ACCESS_KEY);
                c.region = get(AWS_REGION);
                c.endpoint = get(AWS_ENDPOINT_URL);
            }
            Scheme::Azure => {
                c.account = get(AZURE_ACCOUNT);
                c.access_key = get(AZURE_KEY);
                c.endpoint = get(AZURE_ENDPOINT);
            }
            Scheme::Gcs => {
                c.service_account_key = get(GOOGLE_KEY);
                c.endpoint = get(GOOGLE_ENDPOINT);
            }
            Scheme::File => {}
        }
        c
    }

    /// What a run needs in its environment to use `uri` (inside this
    /// store) with `skyward checkpoint` or the provider's own tools.
    pub fn env_for(&self, uri: &str) -> BTreeMap<String, String> {
        let mut e = BTreeMap::new();
        e.insert(ENV_URI.to_string(), uri.to_string());
        let mut put = |k: &str, v: &Option<String>| {
            if let Some(v) = v {
                e.insert(k.to_string(), v.clone());
            }
        };
        match self.uri.scheme {
            Scheme::S3 => {
                put(AWS_ACCESS_KEY_ID, &self.access_key_id);
                put(AWS_SECRET_ACCESS_KEY, &self.secret_access_key);
                put(AWS_REGION, &self.region);
                put(AWS_ENDPOINT_URL, &self.endpoint);
            }
            Scheme::Azure => {
                put(AZURE_ACCOUNT, &self.account);
                put(AZURE_KEY, &self.access_key);
                put(AZURE_ENDPOINT, &self.endpoint);
            }
            Scheme::Gcs => {
                put(GOOGLE_KEY, &self.service_account_key);
                put(GOOGLE_ENDPOINT, &self.endpoint);
            }
            Scheme::File => {}
        }
        e
    }
}

/// The configured store covering `uri` (the most specific one); a local
/// directory needs none.
pub fn covering<'a>(stores: &'a [StoreConfig], uri: &StoreUri) -> Option<&'a StoreConfig> {
    stores
        .iter()
        .filter(|s| s.uri.contains(uri))
        .max_by_key(|s| s.uri.path.len())
}

/// One workload location in one store, opened.
#[derive(Clone)]
pub struct Store {
    inner: Arc<dyn ObjectStore>,
    prefix: ObjPath,
    uri: String,
    /// For a `file://` store, its directory.
    local: Option<PathBuf>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Store({})", self.uri)
    }
}

/// What a store holds under a location: complete checkpoints by step.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Listing {
    pub steps: Vec<u64>,
}

impl Listing {
    pub fn newest(&self) -> Option<u64> {
        self.steps.last().copied()
    }
}

fn client_options(endpoint: Option<&str>) -> ClientOptions {
    ClientOptions::new()
        .with_timeout(REQUEST_TIMEOUT)
        .with_connect_timeout(CONNECT_TIMEOUT)
        .with_allow_http(endpoint.is_some_and(|e| e.starts_with("http://")))
}

fn retry() -> RetryConfig {
    RetryConfig {
        max_retries: 3,
        retry_timeout: RETRY_TIMEOUT,
        ..RetryConfig::default()
    }
}

impl Store {
    /// Opens `uri` (a workload's location, inside `cfg`'s).
    pub fn open(cfg: &StoreConfig, uri: &StoreUri) -> Result<Store, CheckpointError> {
        // reqwest's TLS uses the process's rustls provider: ring, as the
        // gateway (installing twice is harmless).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let name = uri.to_string();
        let bad = |e: object_store::Error| CheckpointError::Config(format!("{name}: {e}"));
        let endpoint = cfg.endpoint.as_deref();
        let (inner, prefix): (Arc<dyn ObjectStore>, String) = match uri.scheme {
            Scheme::S3 => {
                let mut b = object_store::aws::AmazonS3Builder::new()
                    .with_bucket_name(&uri.bucket)
                    .with_region(cfg.region.as_deref().unwrap_or("us-east-1"))
                    .with_client_options(client_options(endpoint))
                    .with_retry(retry());
                if let Some(e) = endpoint {
                    b = b.with_endpoint(e);
                }
                if let (Some(k), Some(s)) = (&cfg.access_key_id, &cfg.secret_access_key) {
                    b = b.with_access_key_id(k).with_secret_access_key(s);
                }
                (Arc::new(b.build().map_err(bad)?), uri.path.clone())
            }
            Scheme::Azure => {
                let account = cfg.account.clone().ok_or_else(|| {
                    CheckpointError::Config(format!(
                        "{name}: no Azure storage account (account, or {AZURE_ACCOUNT})"
                    ))
                })?;
                let mut b = object_store::azure::MicrosoftAzureBuilder::new()
                    .with_account(account)
                    .with_container_name(&uri.bucket)
                    .with_client_options(client_options(endpoint))
                    .with_retry(retry());
                if let Some(k) = &cfg.access_key {
                    b = b.with_access_key(k);
                }
                if let Some(e) = endpoint {
                    b = b.with_endpoint(e.to_string());
                }
                (Arc::new(b.build().map_err(bad)?), uri.path.clone())
            }
            Scheme::Gcs => {
                let mut b = object_store::gcp::GoogleCloudStorageBuilder::new()
                    .with_bucket_name(&uri.bucket)
                    .with_client_options(client_options(endpoint))
                    .with_retry(retry());
                if let Some(k) = &cfg.service_account_key {
                    b = b.with_service_account_key(k);
                }
                (Arc::new(b.build().map_err(bad)?), uri.path.clone())
            }
            Scheme::File => {
                // Rooted at `/`, the location as the prefix: opening (and
                // listing) creates nothing; writing creates what it needs.
                let fs = object_store::local::LocalFileSystem::new();
                (Arc::new(fs), uri.path.clone())
            }
        };
        let local = (uri.scheme == Scheme::File).then(|| PathBuf::from(format!("/{}", uri.path)));
        Ok(Store {
            inner,
            prefix: ObjPath::from(prefix),
            uri: name,
            local,
        })
    }

    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// A `file://` store is a directory that the server and runs (often
    /// other users) share, as on one machine: the directories a write
    /// needs are made writable by all, so that a copy the server made does
    /// not lock out the run that writes the next checkpoint there.
    fn local_dirs(&self, name: &str) -> Result<(), CheckpointError> {
        use std::os::unix::fs::PermissionsExt;
        let Some(root) = &self.local else {
            return Ok(());
        };
        let mut todo = vec![root.clone()];
        if let Some((parents, _file)) = name.rsplit_once('/') {
            let mut dir = root.clone();
            for part in parents.split('/') {
                dir = dir.join(part);
                todo.push(dir.clone());
            }
        }
        for d in todo {
            if d.is_dir() {
                continue;
            }
            std::fs::create_dir_all(&d).map_err(|e| io(&d, e))?;
            std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777))
                .map_err(|e| io(&d, e))?;
        }
        Ok(())
    }

    fn path(&self, name: &str) -> ObjPath {
        let mut p = self.prefix.clone();
        for part in name.split('/') {
            p = p.join(part);
        }
        p
    }

    fn err(&self, op: &str, e: impl std::fmt::Display) -> CheckpointError {
        CheckpointError::Store {
            uri: self.uri.clone(),
            op: op.to_string(),
            why: e.to_string(),
        }
    }

    /// The complete checkpoints under the location, oldest first.
    pub async fn list(&self) -> Result<Listing, CheckpointError> {
        let prefix = (!self.prefix.as_ref().is_empty()).then_some(&self.prefix);
        if self.local.as_ref().is_some_and(|d| !d.exists()) {
            return Ok(Listing::default());
        }
        let r = self
            .inner
            .list_with_delimiter(prefix)
            .await
            .map_err(|e| self.err("list", e))?;
        if r.objects.len() > LIST_MAX {
            return Err(self.err(
                "list",
                format!("more than {LIST_MAX} objects at the top of the location"),
            ));
        }
        let mut steps: Vec<u64> = r
            .objects
            .iter()
            .filter_map(|o| o.location.filename().and_then(layout::step_of))
            .collect();
        steps.sort_unstable();
        Ok(Listing { steps })
    }

    /// Checkpoint `step`'s manifest, checked.
    pub async fn manifest(&self, step: u64) -> Result<Manifest, CheckpointError> {
        let p = self.path(&layout::manifest_name(step));
        let got = match self.inner.get(&p).await {
            Ok(g) => g,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(CheckpointError::NotFound {
                    uri: self.uri.clone(),
                    step: Some(step),
                })
            }
            Err(e) => return Err(self.err("read manifest", e)),
        };
        if got.meta.size > layout::MANIFEST_BYTES_MAX as u64 {
            return Err(CheckpointError::Manifest {
                uri: self.uri.clone(),
                step,
                why: format!("manifest larger than {} bytes", layout::MANIFEST_BYTES_MAX),
            });
        }
        let bytes = got
            .bytes()
            .await
            .map_err(|e| self.err("read manifest", e))?;
        Manifest::parse(&bytes, step).map_err(|why| CheckpointError::Manifest {
            uri: self.uri.clone(),
            step,
            why,
        })
    }

    /// Writes checkpoint `step` from a file or a directory (its regular
    /// files, recursively); the manifest last. Returns the manifest.
    pub async fn put(
        &self,
        step: u64,
        from: &Path,
        now_ms: u64,
        attempt: Option<u32>,
    ) -> Result<Manifest, CheckpointError> {
        layout::check_step(step).map_err(CheckpointError::Config)?;
        let files = local_files(from)?;
        let mut entries = Vec::with_capacity(files.len());
        for (rel, path) in &files {
            let mut f = tokio::fs::File::open(path).await.map_err(|e| io(path, e))?;
            let name = format!("{}/{rel}", layout::data_dir(step));
            self.local_dirs(&name)?;
            let dest = self.path(&name);
            let mut w = object_store::buffered::BufWriter::new(self.inner.clone(), dest);
            let n = tokio::io::copy(&mut f, &mut w)
                .await
                .map_err(|e| self.err(&format!("write {rel}"), e))?;
            w.shutdown()
                .await
                .map_err(|e| self.err(&format!("write {rel}"), e))?;
            entries.push(FileEntry {
                path: rel.clone(),
                bytes: n,
            });
        }
        let m = Manifest {
            step,
            bytes: entries.iter().map(|f| f.bytes).sum(),
            files: entries,
            written_at_ms: now_ms,
            attempt,
        };
        self.put_manifest(&m).await?;
        Ok(m)
    }

    async fn put_manifest(&self, m: &Manifest) -> Result<(), CheckpointError> {
        let body = serde_json::to_vec(m).map_err(|e| self.err("write manifest", e))?;
        self.local_dirs(&layout::manifest_name(m.step))?;
        self.inner
            .put(
                &self.path(&layout::manifest_name(m.step)),
                PutPayload::from(body),
            )
            .await
            .map_err(|e| self.err("write manifest", e))?;
        Ok(())
    }

    /// Streams one file of checkpoint `step` into `out`, reading no more
    /// than the manifest's size: a file whose size differs is an error
    /// (the caller drops what it wrote). `out` errors are the caller's.
    async fn read_file_into<W: tokio::io::AsyncWrite + Unpin>(
        &self,
        step: u64,
        f: &FileEntry,
        out: &mut W,
        write_err: impl Fn(std::io::Error) -> CheckpointError,
    ) -> Result<(), CheckpointError> {
        let src = self.path(&format!("{}/{}", layout::data_dir(step), f.path));
        let read = |e: object_store::Error| self.err(&format!("read {}", f.path), e);
        let mut stream = self.inner.get(&src).await.map_err(read)?.into_stream();
        let mut n: u64 = 0;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(read)?;
            n += chunk.len() as u64;
            if n > f.bytes {
                break;
            }
            out.write_all(&chunk).await.map_err(&write_err)?;
        }
        if n != f.bytes {
            return Err(CheckpointError::Manifest {
                uri: self.uri.clone(),
                step,
                why: format!("{} has {n} bytes, the manifest says {}", f.path, f.bytes),
            });
        }
        Ok(())
    }

    /// Reads checkpoint `step` into the directory `to` (created), each
    /// file at its path; a file whose size differs from the manifest's
    /// is an error.
    pub async fn get(&self, step: u64, to: &Path) -> Result<Manifest, CheckpointError> {
        let m = self.manifest(step).await?;
        tokio::fs::create_dir_all(to).await.map_err(|e| io(to, e))?;
        for f in &m.files {
            let dest = to.join(&f.path);
            if let Some(parent) = dest.parent() {
                tokio::fs::create_dir_all(parent)
                    .await
                    .map_err(|e| io(parent, e))?;
            }
            let mut out = tokio::fs::File::create(&dest)
                .await
                .map_err(|e| io(&dest, e))?;
            self.read_file_into(step, f, &mut out, |e| io(&dest, e))
                .await?;
            out.flush().await.map_err(|e| io(&dest, e))?;
        }
        Ok(m)
    }

    /// Copies checkpoint `step` to another store, streaming each file;
    /// the manifest last, so the copy appears whole or not at all.
    pub async fn copy_to(&self, to: &Store, step: u64) -> Result<Manifest, CheckpointError> {
        let m = self.manifest(step).await?;
        for f in &m.files {
            let name = format!("{}/{}", layout::data_dir(step), f.path);
            to.local_dirs(&name)?;
            let mut w = object_store::buffered::BufWriter::new(to.inner.clone(), to.path(&name));
            let write_err = |e| to.err(&format!("write {}", f.path), e);
            if let Err(e) = self.read_file_into(step, f, &mut w, write_err).await {
                let _ = w.abort().await;
                return Err(e);
            }
            w.shutdown().await.map_err(write_err)?;
        }
        to.put_manifest(&m).await?;
        Ok(m)
    }
}

/// The regular files under `from` (or `from` itself) with their paths
/// relative to it; symbolic links are refused (a checkpoint holds data,
/// not pointers to the writer's disk).
fn local_files(from: &Path) -> Result<Vec<(String, PathBuf)>, CheckpointError> {
    let meta = std::fs::symlink_metadata(from).map_err(|e| io(from, e))?;
    if meta.is_file() {
        let name = from
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| io(from, "a file name in UTF-8 is needed"))?;
        return Ok(vec![(name.to_string(), from.to_path_buf())]);
    }
    if !meta.is_dir() {
        return Err(io(from, "not a regular file or a directory"));
    }
    let mut out = Vec::new();
    let mut todo = vec![(from.to_path_buf(), String::new())];
    while let Some((dir, rel)) = todo.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(&dir)
            .map_err(|e| io(&dir, e))?
            .collect::<Result<_, _>>()
            .map_err(|e| io(&dir, e))?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let path = e.path();
            let name = e
                .file_name()
                .into_string()
                .map_err(|_| io(&path, "a file name in UTF-8 is needed"))?;
            let r = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let t = e.file_type().map_err(|e| io(&path, e))?;
            if t.is_symlink() {
                return Err(io(&path, "symbolic links are not copied into a checkpoint"));
            } else if t.is_dir() {
                todo.push((path, r));
            } else if t.is_file() {
                layout::check_file_path(&r).map_err(|w| io(&path, w))?;
                out.push((r, path));
                if out.len() > layout::FILES_MAX {
                    return Err(io(from, format!("more than {} files", layout::FILES_MAX)));
                }
            }
        }
    }
    if out.is_empty() {
        return Err(io(from, "no files to write"));
    }
    out.sort();
    Ok(out)
}
