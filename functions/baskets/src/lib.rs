//! `baskets`: the inbound `baskets` queue's consumer (the loyalty
//! programme's weekly basket summaries per card and week, and the
//! non-member baseline → the members' basket aggregates and marketing's
//! `basket_uplift`; `community::baskets`).
pub use community::baskets::BasketsConsumer;
