use super::*;

#[test]
fn lists_keep_order_and_exact_bytes() {
    let mut table = Table::new();
    let a = table.push(List::Window, "a", Value::from("1")).unwrap();
    let b = table.push(List::Window, "b", Value::from("22")).unwrap();
    table.push(List::Hot, "c", Value::from("333")).unwrap();
    table.check();
    assert_eq!(table.keys_newest_first(List::Window), ["b", "a"]);
    assert_eq!((table.bytes(List::Window), table.bytes(List::Hot)), (5, 4));
    table.touch(a);
    assert_eq!(table.keys_newest_first(List::Window), ["a", "b"]);
    table.move_to(b, List::Protected);
    assert_eq!(table.bytes(List::Protected), 3);
    assert_eq!(table.oldest(List::Window), Some(a));
    assert_eq!(table.peek("a").unwrap().newest_of, Some(List::Window));
    assert_eq!(table.peek("b").unwrap().newest_of, Some(List::Protected));
    assert_eq!(table.peek("c").unwrap().newest_of, None, "hot is not asked");
    assert_eq!(table.replace(b, Value::from("x")), Some(Value::from("22")));
    assert_eq!(table.bytes(List::Protected), 2);
    table.check();
    let (list, value) = table.remove(a).unwrap();
    assert_eq!((list, value.key_bytes()), (List::Window, &b"a"[..]));
    assert!(table.remove(a).is_none(), "a freed slot holds nothing");
    assert_eq!(table.find("a"), None);
    // Freed slots are reused.
    let d = table.push(List::Probation, "d", Value::from("")).unwrap();
    assert_eq!(d, a);
    assert_eq!(table.entries(), 3);
    table.check();
    table.clear();
    assert_eq!((table.entries(), table.bytes(List::Hot)), (0, 0));
}
