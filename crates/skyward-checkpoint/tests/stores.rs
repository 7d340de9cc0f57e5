//! Checkpoints in real S3 and Azure Blob protocol servers (moto's S3
//! server and Azurite, started by scripts/objstore.sh from the test
//! script), and in a local directory: write, list, read back byte for
//! byte, copy across providers, and refuse what a hostile writer left.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)]

use skyward_checkpoint::{CheckpointError, Reach, Store, StoreConfig};
use skyward_model::StoreUri;
use std::path::Path;

fn var(k: &str) -> String {
    match std::env::var(k) {
        Ok(v) if !v.is_empty() => v,
        _ => panic!("{k} is not set: run the suite with ./scripts/test.sh, which starts the object stores (scripts/objstore.sh)"),
    }
}

/// A fresh location in the test bucket of moto's S3 server.
fn s3(tag: &str) -> (StoreConfig, StoreUri) {
    let uri = StoreUri::parse(&format!("s3://skyward-test/{tag}-{}", unique())).unwrap();
    let cfg = StoreConfig {
        endpoint: Some(var("SKYWARD_TEST_S3_ENDPOINT")),
        region: Some("us-east-1".into()),
        access_key_id: Some("test".into()),
        secret_access_key: Some("test".into()),
        ..StoreConfig::bare(StoreUri::parse("s3://skyward-test").unwrap())
    };
    (cfg, uri)
}

/// A fresh location in Azurite's test container.
fn az(tag: &str) -> (StoreConfig, StoreUri) {
    let uri = StoreUri::parse(&format!("az://skyward-test/{tag}-{}", unique())).unwrap();
    let cfg = StoreConfig {
        endpoint: Some(var("SKYWARD_TEST_AZURE_ENDPOINT")),
        account: Some(var("SKYWARD_TEST_AZURE_ACCOUNT")),
        access_key: Some(var("SKYWARD_TEST_AZURE_KEY")),
        reach: Reach::Only(vec!["azure".into()]),
        ..StoreConfig::bare(StoreUri::parse("az://skyward-test").unwrap())
    };
    (cfg, uri)
}

fn unique() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{}-{t}", std::process::id())
}

/// A checkpoint directory: a 12 MiB file (several upload parts) with
/// bytes that differ everywhere, and a small nested one.
fn sample(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let big: Vec<u8> = (0..12 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let files = vec![
        ("model.bin".to_string(), big),
        ("opt/state.json".to_string(), b"{\"lr\":0.0003}".to_vec()),
    ];
    for (p, b) in &files {
        let path = dir.join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, b).unwrap();
    }
    files
}

fn same_files(dir: &Path, want: &[(String, Vec<u8>)]) {
    for (p, b) in want {
        let got = std::fs::read(dir.join(p)).unwrap();
        assert!(
            got == *b,
            "{p}: {} bytes read back, {} written, or different",
            got.len(),
            b.len()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_goes_to_s3_is_copied_to_azure_and_reads_back_byte_for_byte() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("ckpt");
    let files = sample(&src);
    let (s3c, s3u) = s3("copy");
    let (azc, azu) = az("copy");
    let a = Store::open(&s3c, &s3u).unwrap();
    let b = Store::open(&azc, &azu).unwrap();
    assert!(a.list().await.unwrap().steps.is_empty());

    let m = a.put(7, &src, 1_000, None).await.unwrap();
    a.put(12, &src.join("opt"), 2_000, None).await.unwrap();
    assert_eq!(m.bytes, 12 * 1024 * 1024 + 13);
    assert_eq!(a.list().await.unwrap().steps, vec![7, 12]);

    // Across providers: the manifest comes last, so Azure lists it only
    // once every file is there.
    let copied = a.copy_to(&b, 7).await.unwrap();
    assert_eq!(copied, m);
    assert_eq!(b.list().await.unwrap().steps, vec![7]);
    let out = tmp.path().join("from-azure");
    b.get(7, &out).await.unwrap();
    same_files(&out, &files);

    match b.get(12, &tmp.path().join("x")).await {
        Err(CheckpointError::NotFound { step: Some(12), .. }) => {}
        other => panic!("expected not found, got {other:?}"),
    }
}

/// Writes an object as is, beside the layout (what a hostile run can do
/// with the credentials it was given).
async fn raw_put(c: &StoreConfig, u: &StoreUri, name: &str, body: &[u8]) {
    use object_store::ObjectStoreExt;
    let s = object_store::aws::AmazonS3Builder::new()
        .with_bucket_name(&u.bucket)
        .with_region("us-east-1")
        .with_endpoint(c.endpoint.clone().unwrap())
        .with_allow_http(true)
        .with_access_key_id("test")
        .with_secret_access_key("test")
        .build()
        .unwrap();
    let path = object_store::path::Path::from(format!("{}/{name}", u.path));
    s.put(&path, body.to_vec().into()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_hostile_writer_leaves_is_refused_and_nothing_escapes() {
    let tmp = tempfile::tempdir().unwrap();
    let (c, u) = s3("hostile");
    let (azc, azu) = az("hostile");
    let s = Store::open(&c, &u).unwrap();
    let replica = Store::open(&azc, &azu).unwrap();
    let dir = tmp.path().join("c");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("a"), b"12345").unwrap();
    s.put(1, &dir, 1, None).await.unwrap();

    // A manifest whose file would land outside the destination.
    raw_put(
        &c,
        &u,
        "step-000000000002.json",
        br#"{"step":2,"files":[{"path":"../../escaped","bytes":5}],"bytes":5,"written_at_ms":1}"#,
    )
    .await;
    // One that says 10 bytes where the data holds 5.
    raw_put(&c, &u, "step-000000000003/a", b"12345").await;
    raw_put(
        &c,
        &u,
        "step-000000000003.json",
        br#"{"step":3,"files":[{"path":"a","bytes":10}],"bytes":10,"written_at_ms":1}"#,
    )
    .await;
    // Not JSON at all; and one that says it is another step.
    raw_put(&c, &u, "step-000000000004.json", b"\x00\xffnot json").await;
    raw_put(
        &c,
        &u,
        "step-000000000005.json",
        br#"{"step":1,"files":[],"bytes":0,"written_at_ms":1}"#,
    )
    .await;
    // Listing reads names only; reading each is where they are refused.
    assert_eq!(s.list().await.unwrap().steps, vec![1, 2, 3, 4, 5]);
    let out = tmp.path().join("out").join("deeper");
    for (step, want) in [
        (2, "'..'"),
        (3, "has 5 bytes, the manifest says 10"),
        (4, "manifest:"),
        (5, "says step 1"),
    ] {
        let e = s.get(step, &out).await.unwrap_err();
        assert!(
            matches!(e, CheckpointError::Manifest { .. }) && e.to_string().contains(want),
            "step {step}: {e}"
        );
        let e = s.copy_to(&replica, step).await.unwrap_err();
        assert!(e.to_string().contains(want), "copy of step {step}: {e}");
    }
    assert!(!tmp.path().join("escaped").exists() && !tmp.path().join("out/escaped").exists());
    // The refused copies left no manifest on the other side.
    assert!(replica.list().await.unwrap().steps.is_empty());
    // The good checkpoint still reads back.
    s.get(1, &out).await.unwrap();
    assert_eq!(std::fs::read(out.join("a")).unwrap(), b"12345");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_directory_is_a_store_too_and_a_dead_endpoint_fails_in_bounded_time() {
    let tmp = tempfile::tempdir().unwrap();
    let uri = StoreUri::parse(&format!("file://{}/store", tmp.path().display())).unwrap();
    let s = Store::open(&StoreConfig::bare(uri.clone()), &uri).unwrap();
    // Opening and listing create nothing (the server lists stores a run
    // will write to, often as another user).
    assert!(s.list().await.unwrap().steps.is_empty());
    assert!(!tmp.path().join("store").exists());
    let src = tmp.path().join("one.bin");
    std::fs::write(&src, b"weights").unwrap();
    s.put(5, &src, 1, None).await.unwrap();
    // What a write made is writable by the run that writes next (a
    // directory shared by the server and runs of other users).
    {
        use std::os::unix::fs::PermissionsExt;
        for d in ["store", "store/step-000000000005"] {
            let mode = std::fs::metadata(tmp.path().join(d))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o777, "{d}: {mode:o}");
        }
    }
    assert_eq!(s.list().await.unwrap().newest(), Some(5));
    s.get(5, &tmp.path().join("back")).await.unwrap();
    assert_eq!(
        std::fs::read(tmp.path().join("back/one.bin")).unwrap(),
        b"weights"
    );

    // Nothing listens on this port: an error naming the store, well
    // inside the retry bound.
    let (mut c, u) = s3("dead");
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    c.endpoint = Some(format!("http://127.0.0.1:{port}"));
    let t = std::time::Instant::now();
    let e = Store::open(&c, &u).unwrap().list().await.unwrap_err();
    assert!(e.to_string().contains("s3://skyward-test/dead"), "{e}");
    assert!(
        t.elapsed() < std::time::Duration::from_secs(60),
        "{:?}",
        t.elapsed()
    );
}
