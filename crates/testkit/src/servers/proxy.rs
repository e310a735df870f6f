//! A TCP forwarder in front of a server, for fault tests: [`Proxy::kill`] makes the endpoint
//! die as a crashed server does (listener gone, every open connection cut) while the data
//! behind it survives, and [`Proxy::restart`] brings it back on the same port. moto keeps its
//! data in memory, so killing moto itself would also lose the repository.

use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// A forwarder from 127.0.0.1:`port` to 127.0.0.1:`target`.
pub struct Proxy {
    /// The port clients use.
    pub port: u16,
    target: u16,
    running: Mutex<Option<Running>>,
}

struct Running {
    stop: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
    accept: std::thread::JoinHandle<()>,
}

impl Proxy {
    /// Starts forwarding to `target` on a free port.
    pub fn start(target: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let proxy = Self {
            port: listener.local_addr().unwrap().port(),
            target,
            running: Mutex::new(None),
        };
        proxy.serve(listener);
        proxy
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn serve(&self, listener: TcpListener) {
        let stop = Arc::new(AtomicBool::new(false));
        let open = Arc::new(Mutex::new(Vec::new()));
        let target = self.target;
        let accept = {
            let (stop, open) = (stop.clone(), open.clone());
            std::thread::spawn(move || {
                for client in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(client) = client else { continue };
                    let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                        continue;
                    };
                    {
                        let mut open = open.lock().unwrap();
                        open.push(client.try_clone().unwrap());
                        open.push(server.try_clone().unwrap());
                    }
                    pipe(client.try_clone().unwrap(), server.try_clone().unwrap());
                    pipe(server, client);
                }
            })
        };
        *self.running.lock().unwrap() = Some(Running { stop, open, accept });
    }

    /// Stops listening and cuts every open connection; returns once the port is closed.
    pub fn kill(&self) {
        let Some(running) = self.running.lock().unwrap().take() else {
            return;
        };
        running.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop, which then drops the listener.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        running.accept.join().unwrap();
        for stream in running.open.lock().unwrap().drain(..) {
            // Already closed by its peer is fine.
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    /// Listens on the same port again.
    pub fn restart(&self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).unwrap();
        self.serve(listener);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.kill();
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        // Ends when either side closes or is cut; the other direction sees it too.
        let _ = std::io::copy(&mut from, &mut to);
        let _ = to.shutdown(Shutdown::Write);
    });
}
