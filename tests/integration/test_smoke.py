def test_capture_is_committed_before_200(api, db):
    response = api.post("/api/v1/analytics/capture/", json={"distinct_id": "u1", "event_type": "app_open"})
    assert response.status_code == 200, response.text
    uuid = response.json()["uuid"]
    row = db.execute("SELECT event_type, distinct_id FROM events WHERE uuid = %s", (uuid,)).fetchone()
    assert row == ("app_open", "u1")
