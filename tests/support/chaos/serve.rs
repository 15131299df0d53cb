//! Serving a fake (the proxy, the fake APIs) on a local port.

pub(super) async fn serve(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a local port");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    format!("http://{addr}")
}

/// Serves `router` on a thread of its own (a current-thread runtime), so the fake answers
/// on time however busy the runtime of the code under test is.
pub(super) fn serve_on_own_thread(router: axum::Router) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for the fake");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind a local port");
            tx.send(listener.local_addr().expect("local addr"))
                .expect("report the address");
            let _ = axum::serve(listener, router).await;
        });
    });
    format!("http://{}", rx.recv().expect("the fake started"))
}
