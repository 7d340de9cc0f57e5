#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Malformed input gets an error naming file, line and field.

use skyward_catalog::Catalog;
use skyward_spec::{parse, InputFormat, TaskDefaults};

fn cat() -> Catalog {
    Catalog::builtin().unwrap()
}

const GOOD: &str = "workloads:
  - name: a
    accelerators: [\"H100:8\"]
    hours: 10
";

#[test]
fn good_fleet_parses() {
    let p = parse(GOOD, "f.yaml", &cat(), &TaskDefaults { hours: None }).unwrap();
    assert_eq!(p.format, InputFormat::Fleet);
    assert_eq!(p.fleet.workloads[0].nodes, 1);
    assert_eq!(p.fleet.workloads[0].accelerators[0].name, "H100");
}

#[test]
fn error_table() {
    // (input, expected line, expected fragments)
    let cases: &[(&str, Option<usize>, &[&str])] = &[
        ("workloads:\n  - name: a\n    accelerators: [H100:8]\n    hours: 10\n    nodez: 3\n", Some(5), &["unknown field `nodez`", "workloads[0]"]),
        ("workloads:\n  - name: a\n    accelerators: [H1OO:8]\n    hours: 10\n", Some(3), &["workloads[0].accelerators", "unknown accelerator 'H1OO'", "did you mean 'H100'"]),
        ("workloads:\n  - name: a\n    accelerators: [H100:8]\n    hours: -1\n", Some(4), &["workloads[0].hours", "above 0"]),
        ("workloads:\n  - name: a\n    accelerators: [H100:8]\n    hours: ten\n", Some(4), &["hours"]),
        ("workloads:\n  - name: a\n    accelerators: [H100:8]\n    hours: 1\n  - name: a\n    accelerators: [H100:8]\n    hours: 1\n", Some(5), &["duplicate workload name 'a'"]),
        ("workloads:\n  - name: a\n    accelerators: [H100:8]\n    hours: 1\n    providers: [awz]\n", Some(5), &["unknown provider 'awz'"]),
        ("workloads:\n  - name: a\n    accelerators: [H100:8]\n    hours: 1\n    regions: [us-east-9]\n", Some(5), &["unknown region 'us-east-9'"]),
        ("workloads:\n  - name: a\n    accelerators: [H100:8]\n    hours: 1\n    residency: mars\n", Some(5), &["unknown geography 'mars'"]),
        ("workloads:\n  - name: a\n    accelerators: [H100:8]\n    hours: 1\n    compliance: [pci-dss-9]\n", Some(5), &["unknown certification"]),
        ("workloads:\n  - name: a\n    accelerators: [H100:8]\n    hours: 1\n    latency_ms: 20\n", Some(5), &["needs `users:`"]),
        ("workloads:\n  - name: a\n    accelerators: [H100:0]\n    hours: 1\n", Some(3), &["count"]),
        ("workloads:\n  - name: a\n    accelerators: [H100:8]\n    hours: 1\n    replicas: 3\n", Some(5), &["only `kind: serve`"]),
        ("workloads:\n  - name: a\n    accelerators: [H100:8]\n    hours: 1\n    data: {region: us-east-1, gb: 5}\n", Some(5), &["not provider:region"]),
        ("workloads:\n  - name: a\n    accelerators: [H100:8]\n    hours: 1\n    spot: sometimes\n", Some(5), &["unknown variant `sometimes`"]),
        ("workloads:\n  - name: a\n    accelerators: [H100:8]\n    hours: 1\ncontracts:\n  - {name: c, provider: aws, commit_usd: 5, discount_pct: 120}\n", Some(6), &["contracts[0].discount_pct"]),
        ("workloads:\n  - name: a\n    accelerators: [H100:8]\n    hours: 1\ncapacity:\n  - {name: r, provider: aws, region: us-east-1, sku: p99.mega, nodes: 2}\n", Some(6), &["capacity[0].sku", "accelerator: MODEL:COUNT"]),
        ("workloads:\n  - name: a\n    accelerators: [H100:8\n", Some(4), &[]),
        ("workloads: [", None, &[]),
        ("just a string", Some(1), &["expected"]),
        ("", None, &["empty"]),
        ("foo: 1\n", Some(1), &["workloads:"]),
        // Issue 10 #4: inputs that were accepted and silently misused.
        ("workloads: []\n", Some(1), &["workloads", "at least one workload"]),
        ("workloads:\n  - name: a\n    accelerators: [H100:8]\n    hours: 1\ncapacity:\n  - {name: r, provider: aws, region: mars-1, sku: p5.48xlarge, nodes: 2}\n", Some(6), &["capacity[0].region", "unknown region 'aws:mars-1'"]),
        ("workloads:\n  - name: a\n    accelerators: [H100:8]\n    hours: 1\ncapacity:\n  - {name: r, provider: foo, region: x, sku: p5.48xlarge, nodes: 2}\n", Some(6), &["capacity[0].provider", "unknown provider 'foo'"]),
        ("workloads:\n  - name: a\n    accelerators: [H100:8]\n    hours: 1\ncapacity:\n  - {name: r, provider: aws, region: us-east-11, sku: p5.48xlarge, nodes: 2}\n", Some(6), &["did you mean 'aws:us-east-1'"]),
        ("workloads:\n  - name: a\n    accelerators: [H100:8]\n    hours: 1\n    data: {region: \"aws:mars-1\", gb: 5}\n", Some(5), &["workloads[0].data", "unknown region 'aws:mars-1'"]),
        ("workloads:\n  - name: a\n    kind: serve\n    accelerators: [H100:8]\n    hours: 1\n    users: [\"aws:us-east-11\"]\n    latency_ms: 50\n", Some(6), &["workloads[0].users", "did you mean 'aws:us-east-1'"]),
        ("workloads:\n  - name: a\n    accelerators: [H100:8]\n    hours: 1\nsettings: {spot_overhead_pct: 900}\n", Some(5), &["settings.spot_overhead_pct"]),
        ("workloads:\n  - name: a\n    accelerators: [H100:8]\n    hours: 1\ncontracts:\n  - {name: c, provider: aws, commit_usd: 1e30, discount_pct: 10}\n", Some(6), &["contracts[0].commit_usd", "account exactly"]),
    ];
    for (input, line, fragments) in cases {
        let e = parse(input, "f.yaml", &cat(), &TaskDefaults { hours: None }).expect_err(input);
        let text = e.to_string();
        assert!(text.starts_with("f.yaml"), "{text}");
        if line.is_some() {
            assert_eq!(e.line, *line, "{input:?} -> {text}");
        }
        for f in *fragments {
            assert!(text.contains(f), "{input:?} -> {text} (wanted '{f}')");
        }
    }
}

#[test]
fn skypilot_task_maps_resources() {
    let task = "name: t\nnum_nodes: 4\nresources:\n  any_of:\n    - accelerators: H100:8\n      infra: aws/us-east-1\n    - accelerators: {H200: 8}\n      cloud: gcp\n  use_spot: true\nrun: echo hi\n";
    let p = parse(task, "t.yaml", &cat(), &TaskDefaults { hours: Some(5.0) }).unwrap();
    assert_eq!(p.format, InputFormat::SkyPilotTask);
    let w = &p.fleet.workloads[0];
    assert_eq!((w.nodes, w.hours), (4, 5.0));
    assert_eq!(w.accelerators.len(), 2);
    assert_eq!(w.alternative_scopes[0].providers, vec!["aws"]);
    assert_eq!(w.alternative_scopes[0].regions, vec!["aws:us-east-1"]);
    assert_eq!(w.alternative_scopes[1].providers, vec!["gcp"]);
    assert_eq!(w.spot, skyward_model::SpotPolicy::Required);
    assert!(p.notes.iter().any(|n| n.starts_with("run:")));
}

#[test]
fn skypilot_accelerator_forms() {
    for (acc, n) in [
        ("H100:8", 1),
        ("{H100: 8}", 1),
        ("[H100:8, A100:8]", 2),
        ("{H100: 8, A100-80GB: 8}", 2),
    ] {
        let task = format!("resources:\n  accelerators: {acc}\n");
        let p = parse(&task, "t.yaml", &cat(), &TaskDefaults { hours: None }).unwrap();
        assert_eq!(p.fleet.workloads[0].accelerators.len(), n, "{acc}");
        assert!(p.notes.iter().any(|x| x.contains("--hours")));
    }
}

#[test]
fn skypilot_unsupported_fields_are_clear() {
    let cases = [
        (
            "resources:\n  accelerators: H100:8\n  instance_type: p5.48xlarge\n",
            "resources.instance_type",
            "not supported",
        ),
        (
            "resources:\n  accelerators: H100:8\n  zone: us-east-1a\n",
            "resources.zone",
            "not supported",
        ),
        (
            "resources:\n  accelerators: H100:8\n  infra: k8s/my-cluster\n",
            "resources.infra",
            "Kubernetes",
        ),
        (
            "resources:\n  accelerators: H100:0.5\n",
            "resources.accelerators",
            "count",
        ),
        (
            "resources:\n  cpus: 4\n",
            "resources.accelerators",
            "no accelerators",
        ),
        (
            "resources:\n  accelerators: H100:8\nfancy: 1\n",
            "fancy",
            "unknown SkyPilot task field",
        ),
        (
            "resources:\n  accelerators: H100:8\n  use_spot: maybe\n",
            "resources.use_spot",
            "true or false",
        ),
    ];
    for (text, field, frag) in cases {
        let e = parse(text, "t.yaml", &cat(), &TaskDefaults { hours: None }).expect_err(text);
        assert_eq!(e.field, field, "{text} -> {e}");
        assert!(e.to_string().contains(frag), "{text} -> {e}");
        assert!(e.line.is_some(), "{text} -> {e}");
    }
}
