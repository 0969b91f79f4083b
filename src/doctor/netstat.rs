//! Which local processes hold a TCP connection to a given address: the
//! `/proc/net/tcp*` tables give established sockets with their inode, and the
//! `socket:[inode]` links in `/proc/PID/fd` give their owners.
//!
//! Connection tables are per network namespace, so the table of every namespace
//! in use is read (a bot in a container has its own), once per namespace.
//! Sockets of processes we may not inspect (other users, when not run as root)
//! stay invisible; the report says so.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// `st` of an established connection in `/proc/net/tcp`.
const TCP_ESTABLISHED: &str = "01";

/// One established TCP connection: its remote end and its socket inode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    pub remote: SocketAddr,
    pub inode: u64,
}

/// Parses a `/proc/net/tcp` or `/proc/net/tcp6` table, keeping established
/// connections only. Malformed lines are skipped.
pub fn parse_tcp_table(text: &str) -> Vec<Connection> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.get(3) != Some(&TCP_ESTABLISHED) {
                return None;
            }
            let remote = parse_addr(fields.get(2)?)?;
            let inode = fields.get(9)?.parse().ok()?;
            Some(Connection { remote, inode })
        })
        .collect()
}

/// `0100007F:1F90` → 127.0.0.1:8080. The kernel prints the address as the
/// 32-bit words of network-order memory in host byte order, and the port as a
/// plain number.
fn parse_addr(field: &str) -> Option<SocketAddr> {
    let (addr, port) = field.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let words: Option<Vec<[u8; 4]>> = (0..addr.len() / 8)
        .map(|i| {
            let word = addr.get(i * 8..i * 8 + 8)?;
            u32::from_str_radix(word, 16).ok().map(u32::to_ne_bytes)
        })
        .collect();
    let bytes: Vec<u8> = words?.concat();
    let ip = match bytes.len() {
        4 => IpAddr::V4(Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3])),
        16 => {
            let mut b = [0u8; 16];
            b.copy_from_slice(&bytes);
            let v6 = Ipv6Addr::from(b);
            // A dual-stack socket talking IPv4 shows ::ffff:a.b.c.d.
            v6.to_ipv4_mapped()
                .map(IpAddr::V4)
                .unwrap_or(IpAddr::V6(v6))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// Every PID visible in `/proc`, ascending.
pub fn pids() -> Vec<i32> {
    let mut pids: Vec<i32> = std::fs::read_dir("/proc")
        .map(|dir| {
            dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    pids.sort_unstable();
    pids
}

/// Socket inodes among the open files of `pid` (empty when not permitted).
fn socket_inodes(pid: i32) -> Vec<u64> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    dir.filter_map(|e| {
        let target = std::fs::read_link(e.ok()?.path()).ok()?;
        let target = target.to_str()?;
        target
            .strip_prefix("socket:[")?
            .strip_suffix(']')?
            .parse()
            .ok()
    })
    .collect()
}

/// What a scan found: the processes connected to the targets, and how many
/// processes could not be inspected.
#[derive(Debug, Default)]
pub struct Scan {
    /// PID → remote addresses among the targets it is connected to.
    pub connected: BTreeMap<i32, Vec<SocketAddr>>,
    /// Processes whose open files we may not read (run doctor as root to see them).
    pub hidden: usize,
}

/// Finds the processes among `pids` with an established TCP connection to one
/// of `targets`.
pub fn connections_to(targets: &[SocketAddr], pids: &[i32]) -> Scan {
    let mut scan = Scan::default();
    if targets.is_empty() {
        return scan;
    }
    // One table per network namespace; our own first (always readable).
    let mut tables: Vec<String> = vec!["/proc/self/net".into()];
    let mut seen_ns: HashSet<String> = HashSet::new();
    if let Ok(ns) = std::fs::read_link("/proc/self/ns/net") {
        seen_ns.insert(ns.display().to_string());
    }
    for pid in pids {
        if let Ok(ns) = std::fs::read_link(format!("/proc/{pid}/ns/net")) {
            if seen_ns.insert(ns.display().to_string()) {
                tables.push(format!("/proc/{pid}/net"));
            }
        }
    }
    let mut wanted: HashMap<u64, SocketAddr> = HashMap::new();
    for dir in &tables {
        for name in ["tcp", "tcp6"] {
            let Ok(text) = std::fs::read_to_string(format!("{dir}/{name}")) else {
                continue;
            };
            for c in parse_tcp_table(&text) {
                if targets.contains(&c.remote) {
                    wanted.insert(c.inode, c.remote);
                }
            }
        }
    }
    for pid in pids {
        if std::fs::read_dir(format!("/proc/{pid}/fd")).is_err() {
            scan.hidden += 1;
            continue;
        }
        if wanted.is_empty() {
            continue;
        }
        let mut remotes: Vec<SocketAddr> = socket_inodes(*pid)
            .iter()
            .filter_map(|inode| wanted.get(inode).copied())
            .collect();
        if !remotes.is_empty() {
            remotes.sort_unstable();
            remotes.dedup();
            scan.connected.insert(*pid, remotes);
        }
    }
    scan
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ipv4_and_ipv6_tables() {
        // Captured on a little-endian host.
        let v4 = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 621 1 0 100 0 0 10 0\n\
   1: 0100007F:C350 0100007F:1F90 01 00000000:00000000 00:00000000 00000000  1000        0 7788 1 0 20 4 30 10 -1\n";
        let conns = parse_tcp_table(v4);
        if cfg!(target_endian = "little") {
            assert_eq!(
                conns,
                vec![Connection {
                    remote: "127.0.0.1:8080".parse().unwrap(),
                    inode: 7788
                }]
            );
        }
        let v6 = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0000000000000000FFFF00000100007F:C350 0000000000000000FFFF00000100007F:01BB 01 00000000:00000000 00:00000000 00000000     0        0 4242 1 0 20 4 30 10 -1\n";
        let conns = parse_tcp_table(v6);
        if cfg!(target_endian = "little") {
            assert_eq!(conns[0].remote, "127.0.0.1:443".parse().unwrap());
            assert_eq!(conns[0].inode, 4242);
        }
        assert!(parse_tcp_table("header\ngarbage line\n").is_empty());
    }

    #[test]
    fn finds_our_own_connection() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let _client = std::net::TcpStream::connect(addr).unwrap();
        let _server = listener.accept().unwrap();
        let me = std::process::id() as i32;
        let scan = connections_to(&[addr], &[me]);
        assert_eq!(scan.connected.get(&me), Some(&vec![addr]), "{scan:?}");
    }
}
