pub mod budget;
pub mod window;
