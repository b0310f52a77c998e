pub mod backtest;
pub mod bench;
pub mod bench_clustering;
pub mod demo;
pub mod eval;
pub mod replay;
pub mod serve;
pub mod up;
