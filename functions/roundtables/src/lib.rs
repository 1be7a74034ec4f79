//! `roundtables`: events and round tables (tables rondes,
//! `community::roundtables`). `GET /events`, `GET /events/{id}` (public),
//! `POST /events/{id}/registrations`, `DELETE /events/{id}/registrations/me`
//! (member), `POST /events/{id}/attendance` (marketing). The reminder the
//! day before is a scheduled run (`community::roundtables::remind`), in the
//! hourly `digests` function on AWS and on the local server's scheduler.

mod handler;

use axum::routing::{delete, get, post};
use axum::Router;
use community::store::Table;
use community::App;

pub fn routes<T: Table + Clone>(app: App<T>) -> Router {
    Router::new()
        .route("/events", get(handler::list::<T>))
        .route("/events/{id}", get(handler::get_one::<T>))
        .route("/events/{id}/registrations", post(handler::register::<T>))
        .route(
            "/events/{id}/registrations/me",
            delete(handler::cancel::<T>),
        )
        .route("/events/{id}/attendance", post(handler::attendance::<T>))
        .with_state(app)
}

pub fn router<T: Table + Clone>(app: App<T>) -> Router {
    community::http::finish(routes(app.clone()), &app)
}
