//! The link forwarder on real TAP devices between two network namespaces (as root): frames
//! cross at once without an impairment, and are held back by the delay set on the link.

use std::process::Command;
use std::time::Duration;

use playhouse_cluster::impair::{Impairment, Link};

/// Namespaces of this test only (not the cluster's `phc-` ones, so a cluster run is safe).
const NS: [&str; 2] = ["phx-imp-a", "phx-imp-b"];
const ADDRS: [&str; 2] = ["10.232.9.1", "10.232.9.2"];

fn run(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .expect(args[0]);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn teardown() {
    for ns in NS {
        let _ = Command::new("ip").args(["netns", "del", ns]).output();
    }
}

/// Round trips of one byte over TCP from the first namespace to an echo in the second, in ms.
fn round_trips(port: u16) -> Vec<f64> {
    let server = format!(
        "import socket\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n\
         s.bind(('{}',{port}))\ns.listen()\nc,_=s.accept()\nwhile True:\n d=c.recv(10)\n if not d: break\n c.sendall(d)",
        ADDRS[1]
    );
    let mut echo = Command::new("ip")
        .args(["netns", "exec", NS[1], "python3", "-c", &server])
        .spawn()
        .expect("python3");
    let client = format!(
        "import socket,time\nfor _ in range(50):\n try:\n  c=socket.create_connection(('{}',{port}),timeout=5); break\n except OSError: time.sleep(0.1)\n\
         r=[]\nfor _ in range(5):\n t=time.time(); c.sendall(b'x'); c.recv(10); r.append((time.time()-t)*1000)\nprint(' '.join(str(x) for x in r))",
        ADDRS[1]
    );
    let out = run(&["ip", "netns", "exec", NS[0], "python3", "-c", &client]);
    let _ = echo.kill();
    let _ = echo.wait();
    out.split_whitespace()
        .map(|x| x.parse().expect("ms"))
        .collect()
}

#[test]
fn frames_cross_at_once_and_are_held_back_by_the_links_delay() {
    teardown();
    for ns in NS {
        run(&["ip", "netns", "add", ns]);
    }
    let link = Link::open("phx-imp-ta", "phx-imp-tb", 7).expect("TAP devices (root)");
    for (i, (ns, tap)) in NS.iter().zip(["phx-imp-ta", "phx-imp-tb"]).enumerate() {
        run(&["ip", "link", "set", tap, "netns", ns]);
        let cidr = format!("{}/24", ADDRS[i]);
        run(&[
            "ip", "netns", "exec", ns, "ip", "addr", "add", &cidr, "dev", tap,
        ]);
        run(&["ip", "netns", "exec", ns, "ip", "link", "set", tap, "up"]);
        run(&["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"]);
    }
    let quick = round_trips(9001);
    link.set(Impairment {
        delay: Duration::from_millis(60),
        ..Impairment::default()
    });
    let held = round_trips(9002);
    link.set(Impairment::default());
    teardown();
    assert!(
        quick.iter().all(|ms| *ms < 60.0),
        "without impairment: {quick:?}"
    );
    // Each way held 60 ms: every round trip at least 120 ms.
    assert!(
        held.iter().all(|ms| *ms >= 119.0),
        "with a 60 ms delay: {held:?}"
    );
}
