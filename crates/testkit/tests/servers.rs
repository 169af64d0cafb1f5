//! The servers start, answer on their ports, and are gone once their guards drop.

use std::io::{Read, Write};
use std::net::TcpStream;

#[test]
fn postgres_starts_answers_and_stops() {
    let Some(pg) = switchyard_testkit::postgres() else { return };
    let url = pg.url();
    assert!(url.starts_with("postgres://postgres@127.0.0.1:") && url.ends_with("/switchyard"), "{url}");
    let port = pg.port();
    assert!(TcpStream::connect(("127.0.0.1", port)).is_ok());
    drop(pg);
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err(), "still listening after drop");
}

#[test]
fn redis_starts_answers_and_stops() {
    let Some(redis) = switchyard_testkit::redis() else { return };
    assert_eq!(redis.url(), format!("redis://127.0.0.1:{}/", redis.port()));
    let mut stream = TcpStream::connect(("127.0.0.1", redis.port())).unwrap();
    stream.write_all(b"PING\r\n").unwrap();
    let mut reply = [0u8; 7];
    stream.read_exact(&mut reply).unwrap();
    assert_eq!(&reply, b"+PONG\r\n");
    let port = redis.port();
    drop(redis);
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err(), "still listening after drop");
}

#[test]
fn temp_dirs_are_removed_on_drop() {
    let dir = switchyard_testkit::TempDir::new("switchyard-testkit").unwrap();
    let path = dir.path().to_owned();
    std::fs::write(path.join("f"), "x").unwrap();
    drop(dir);
    assert!(!path.exists());
}
