//! Targeting one device (issue 15): the RP lists a user's devices, starts a push
//! for one of them (`device_id`), only that device gets it, and the status names
//! it as the answering device, with the per-device delivery (no push service
//! here: the devices long-poll, so the wake-up is `not_configured`, and the
//! fetch is recorded). Devices run the real core.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failure report

use countersign_core::authenticator::{AccountKind, ActivationOptions, CancelHandle};
use countersign_e2e::{open_device, start_server, wait_pending};
use countersign_test_support::temp_dir;
use serde_json::json;

fn device_id(kind: &AccountKind) -> String {
    match kind {
        AccountKind::Push { device_id, .. } => device_id.clone(),
        AccountKind::Otp => panic!("not a push account"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_to_one_chosen_device() {
    let s = start_server(|_| {}).await;
    let rp = s.rp("Example Bank").await;
    let (dir_a, dir_b, dir_c) = (
        temp_dir("target-a"),
        temp_dir("target-b"),
        temp_dir("target-c"),
    );
    let dev_a = open_device(dir_a.path(), |c| c.device_name = Some("phone".into()));
    let dev_b = open_device(dir_b.path(), |c| c.device_name = Some("tablet".into()));
    let dev_c = open_device(dir_c.path(), |_| {});
    let mut accounts = Vec::new();
    for dev in [&dev_a, &dev_b] {
        let uri = rp.enroll("alice").await.uri;
        let acct = dev
            .auth
            .activate_uri(&uri, ActivationOptions::default())
            .await
            .unwrap();
        accounts.push(acct);
    }
    let bob = dev_c
        .auth
        .activate_uri(&rp.enroll("bob").await.uri, ActivationOptions::default())
        .await
        .unwrap();
    let (id_a, id_b) = (device_id(&accounts[0].kind), device_id(&accounts[1].kind));

    // The RP lists alice's devices to choose one.
    let (code, list) = rp.get("/v1/rp/users/alice/devices").await;
    assert_eq!(code, 200, "{list}");
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["device_id"], id_a.as_str());
    assert_eq!(list[1]["device_id"], id_b.as_str());
    assert_eq!(list[1]["name"], "tablet");
    assert_eq!(list[1]["status"], "active");
    assert_eq!(list[1]["platform"], "desktop");

    // Unknown, or another user's device: 404, nothing started.
    for other in ["dev_nosuchdevice", device_id(&bob.kind).as_str()] {
        let (code, v) = rp
            .push(json!({ "user": "alice", "device_id": other, "number_matching": "off" }))
            .await;
        assert_eq!(
            (code, v["error"]["code"].as_str()),
            (404, Some("not_found")),
            "{v}"
        );
    }

    // Device B only.
    let v = rp
        .start_push(json!({ "user": "alice", "device_id": id_b, "number_matching": "off" }))
        .await;
    assert_eq!(v["devices"], 1);
    let tx = v["tx_id"].as_str().unwrap().to_owned();
    let st = rp.status(&tx).await;
    let delivery = st["delivery"].as_array().unwrap();
    assert_eq!(delivery.len(), 1, "{st}");
    assert_eq!(delivery[0]["device_id"], id_b.as_str());
    assert_eq!(delivery[0]["provider"], "none");
    assert_eq!(delivery[0]["state"], "not_configured");
    assert_eq!(delivery[0]["fetched"], false);

    // A finds nothing (a 1 s long-poll); B gets it and fetches it.
    let on_a = dev_a.auth.pending(1, &CancelHandle::new()).await.unwrap();
    assert!(on_a.is_empty(), "A got {on_a:?}");
    let on_b = wait_pending(&dev_b.auth, 1, 10).await;
    assert_eq!(on_b[0].tx_id, tx);
    let st = rp.status(&tx).await;
    assert_eq!(st["delivery"][0]["fetched"], true, "{st}");
    assert!(st["delivery"][0]["fetched_at"].as_i64().unwrap() > 0);

    // B answers; the status names B.
    dev_b
        .auth
        .approve(&accounts[1].id, &tx, None)
        .await
        .unwrap();
    let st = rp.status(&tx).await;
    assert_eq!(st["state"], "approved");
    assert_eq!(st["device_id"], id_b.as_str());

    // Without device_id, both devices get the next one.
    let v = rp
        .start_push(json!({ "user": "alice", "number_matching": "off" }))
        .await;
    assert_eq!(v["devices"], 2);
    let st = rp.status(v["tx_id"].as_str().unwrap()).await;
    let targeted: Vec<&str> = st["delivery"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["device_id"].as_str().unwrap())
        .collect();
    let mut want = vec![id_a.as_str(), id_b.as_str()];
    want.sort_unstable();
    assert_eq!(targeted, want);
    s.stop().await;
}
