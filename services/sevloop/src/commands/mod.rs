pub mod bench;
pub mod demo;
pub mod replay;
pub mod serve;
pub mod up;
