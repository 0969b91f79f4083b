//! The single-instance lock between real processes.

mod common;

use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use common::*;
use nix::sys::signal::Signal;

#[test]
fn second_instance_is_refused_naming_the_holder_and_lock_survives_sigkill() {
    let s = Scratch::new();
    let config = s.config(&refused_url(), "");
    let notify = NotifySocket::bind(s.dir.path());
    let holder = Instance::run(&config, &notify, None, &[]);
    notify
        .wait_for(Duration::from_secs(20), |l| l == "READY=1")
        .expect("holder never sent READY=1");
    let lock = s.path("run/cryptosat.lock");
    let contents = std::fs::read_to_string(&lock).unwrap();
    let inode = std::fs::metadata(&lock).unwrap().ino();
    assert!(
        contents.contains(&format!("pid={}", holder.pid())),
        "{contents}"
    );
    assert!(
        contents.contains("cmdline=") && contents.contains("started_at="),
        "{contents}"
    );

    // The second copy is refused at once, with the holder's details.
    let (code, out) = run_to_end(&config, &["run"], &[]);
    assert_eq!(code, 75, "expected the 'locked' exit code:\n{out}");
    assert!(out.contains(&format!("PID {}", holder.pid())), "{out}");
    assert!(
        out.contains(&bin().display().to_string()),
        "holder's command line missing:\n{out}"
    );
    assert!(out.contains("To stop it: kill"), "{out}");
    assert_eq!(
        std::fs::read_to_string(&lock).unwrap(),
        contents,
        "the refused instance rewrote the lock file"
    );
    assert_no_secret(&out);

    // A crashed holder's lock is released by the kernel; the file stays.
    holder.signal(Signal::SIGKILL);
    let mut holder = holder;
    holder
        .wait_timeout(Duration::from_secs(10))
        .expect("holder did not die");
    assert_eq!(
        std::fs::metadata(&lock).unwrap().ino(),
        inode,
        "lock file was replaced"
    );

    let notify2 = NotifySocket::bind(&s.path("second"));
    let next = Instance::run(&config, &notify2, None, &[]);
    notify2
        .wait_for(Duration::from_secs(20), |l| l == "READY=1")
        .unwrap_or_else(|| panic!("lock not free after SIGKILL:\n{}", next.output()));
    assert!(std::fs::read_to_string(&lock)
        .unwrap()
        .contains(&format!("pid={}", next.pid())));
    assert_eq!(
        std::fs::metadata(&lock).unwrap().ino(),
        inode,
        "lock file was replaced"
    );
}

#[test]
fn simultaneous_starts_yield_exactly_one_instance() {
    let s = Scratch::new();
    let config = s.config(&refused_url(), "");
    let mut instances: Vec<(Instance, NotifySocket)> = (0..6)
        .map(|i| {
            let dir = s.path(&format!("n{i}"));
            std::fs::create_dir_all(&dir).unwrap();
            let n = NotifySocket::bind(&dir);
            (Instance::run(&config, &n, None, &[]), n)
        })
        .collect();
    std::thread::sleep(Duration::from_secs(3));
    let mut running = 0;
    for (inst, notify) in instances.iter_mut() {
        match inst.wait_timeout(Duration::from_millis(100)) {
            Some(status) => {
                assert_eq!(status.code(), Some(75), "{}", inst.output());
                assert!(
                    notify.assignments().is_empty(),
                    "a refused instance talked to systemd"
                );
            }
            None => {
                running += 1;
                assert!(notify
                    .wait_for(Duration::from_secs(10), |l| l == "READY=1")
                    .is_some());
            }
        }
    }
    assert_eq!(running, 1, "exactly one of six simultaneous starts may run");
}

#[test]
fn missing_lock_directory_is_created_and_unusable_one_is_explained() {
    let s = Scratch::new();
    let config = s.config_with_lock(
        &refused_url(),
        std::path::Path::new("/proc/no-such-dir/x.lock"),
        "",
    );
    let (code, out) = run_to_end(&config, &["run"], &[]);
    assert_eq!(code, 78, "{out}");
    assert!(
        out.contains("cannot create the lock directory /proc/no-such-dir"),
        "{out}"
    );
    assert!(out.contains("service.lock_file"), "{out}");
}
