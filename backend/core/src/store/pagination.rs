//! The one cursor-pagination helper. Ids sort by creation time, so the cursor (`iterator`) is the
//! last id of the page: the next page is everything strictly after it in the list's order. We
//! fetch `limit + 1` rows to know whether this is the last page without a count.

use hookline_types::ListResponse;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, Order, QueryFilter, QueryOrder, QuerySelect, Select,
};

pub const DEFAULT_LIMIT: u64 = 50;
pub const MAX_LIMIT: u64 = 250;

/// A validated page request: `limit` within 1..=250, `iterator` already checked to be an id of the
/// listed kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: u64,
    pub iterator: Option<String>,
}

impl Default for PageRequest {
    fn default() -> Self {
        PageRequest { limit: DEFAULT_LIMIT, iterator: None }
    }
}

/// Newest first (`Desc`) or oldest first (`Asc`), by id.
pub async fn paginate<E, C, T>(
    conn: &C,
    select: Select<E>,
    id_column: E::Column,
    order: Order,
    page: &PageRequest,
    to_out: impl Fn(E::Model) -> T,
    id_of: impl Fn(&E::Model) -> String,
) -> Result<ListResponse<T>, DbErr>
where
    E: EntityTrait,
    C: ConnectionTrait,
{
    let mut select = select;
    if let Some(iterator) = &page.iterator {
        select = match order {
            Order::Desc => select.filter(id_column.lt(iterator.as_str())),
            _ => select.filter(id_column.gt(iterator.as_str())),
        };
    }
    let mut rows = select.order_by(id_column, order).limit(page.limit + 1).all(conn).await?;
    let done = rows.len() as u64 <= page.limit;
    rows.truncate(page.limit as usize);
    let iterator = if done { None } else { rows.last().map(&id_of) };
    Ok(ListResponse { data: rows.into_iter().map(to_out).collect(), iterator, done })
}

/// Maps a page's rows with a fallible conversion (entity → wire type), keeping its cursor.
pub fn try_map<T, U, E>(
    list: ListResponse<T>,
    convert: impl Fn(T) -> Result<U, E>,
) -> Result<ListResponse<U>, E> {
    Ok(ListResponse {
        data: list.data.into_iter().map(convert).collect::<Result<_, _>>()?,
        iterator: list.iterator,
        done: list.done,
    })
}
