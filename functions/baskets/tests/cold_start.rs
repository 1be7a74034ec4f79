//! The function's cold start reads its settings from the table (the
//! applied campaign: `community::live`), not from the files compiled in.

#[tokio::test]
async fn a_cold_start_reads_the_applied_campaign() {
    community::testing::cold_start(env!("CARGO_PKG_NAME")).await;
}
