"""The web app over real HTTP: the page and its files, the API, errors as JSON messages."""

import json
import urllib.error
import urllib.request

import pytest
from lpn_arc.explorer import BackgroundServer, free_port

SMALL = {"train": [{"input": [[1]], "output": [[2]]}], "test": [{"input": [[1]]}]}


@pytest.fixture(scope="module")
def url(explorer):
    with BackgroundServer(explorer) as url:
        yield url


def _get(url, path):
    with urllib.request.urlopen(url + path, timeout=120) as response:
        return response.status, response.headers, response.read()


def _post(url, path, body):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(url + path, data=data, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_the_page_and_its_files_are_served_with_nothing_from_the_network(url):
    status, _, html = _get(url, "")
    assert status == 200 and b"LPN latent explorer" in html
    for name in ("app.js", "style.css"):
        status, _, body = _get(url, f"static/{name}")
        assert status == 200 and body
        assert b"http://" not in body.replace(b"http://www.w3.org/2000/svg", b"")
        assert b"https://" not in body
    assert b"https://" not in html and b"http://" not in html


def test_info_and_tasks(url, explorer):
    _, _, body = _get(url, "api/info")
    info = json.loads(body)
    assert info["tasks"] == len(explorer.tasks) and info["grid"] == [4, 4]
    assert len(info["cloud"]) == len(explorer.tasks) and info["kinds"][0] == "grad"
    _, _, body = _get(url, "api/task/1")
    assert json.loads(body)["task"] == explorer.tasks[1]


def test_encode_search_decode_and_landscape_through_the_api(url, explorer):
    task = explorer.tasks[0]
    status, encoded = _post(url, "api/encode", {"task": task})
    assert status == 200 and len(encoded["pairs"]) == len(task["train"])
    status, first = _post(url, "api/search", {"task": task, "settings": {"steps": 4}})
    assert status == 200 and first["frames"][0]["step"] == 0 and not first["done"]
    status, more = _post(url, f"api/search/{first['id']}/step", {"steps": 3})
    assert [f["step"] for f in more["frames"]] == [1, 2, 3]
    _, last = _post(url, f"api/search/{first['id']}/step", {"steps": 3})
    assert last["done"] and last["steps_done"] == 4 and "grid" in last["decoded"]
    status, probe = _post(url, "api/decode", {"task": task, "point": encoded["anchor"]})
    assert status == 200 and probe["score"] == pytest.approx(encoded["score"], rel=1e-4)
    assert probe["decoded"] == encoded["decoded"]
    best = {"task": task, "point": last["frames"][-1]["best_point"], "run": first["id"]}
    status, at_best = _post(url, "api/decode", best)  # the plane through the best latent
    assert status == 200 and at_best["score"] == pytest.approx(last["frames"][-1]["best"], rel=1e-4)
    assert at_best["decoded"] == last["decoded"]
    other = {**best, "task": explorer.tasks[1]}
    assert "another task" in _post(url, "api/decode", other)[1]["error"]
    status, heat = _post(
        url, "api/landscape", {"task": task, "bounds": [-1, 1, -1, 1], "resolution": 4}
    )
    assert status == 200 and len(heat["values"]) == 4 and len(heat["values"][0]) == 4


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("api/upload", {"text": "{not json"}, "the file is not valid JSON"),
        (
            "api/upload",
            {"text": '{"train": [{"input": [[1]], "output": [[11]]}], "test": [{"input": [[1]]}]}'},
            "colour 11, expected 0-9",
        ),
        (
            "api/encode",
            {
                "task": {
                    "train": [{"input": [[1] * 9], "output": [[1]]}],
                    "test": [{"input": [[1]]}],
                }
            },
            "larger than the maximum 4x4",
        ),
        ("api/encode", b"\xff not json", "the request is not JSON"),
        ("api/search", {"task": None, "settings": {}}, "a task is an object"),
        ("api/search/999/step", {"steps": 1}, "no search '999'"),
        ("api/decode", {"task": SMALL, "point": [0, "x"]}, "point must be a number"),
        ("api/decode", {"task": SMALL, "point": [0]}, "point must be a list of 2 numbers"),
        ("api/landscape", {"task": SMALL, "bounds": [0, 1, 1, 0], "resolution": 4}, "min < max"),
        ("api/landscape", {"task": SMALL, "bounds": [0, 1, 0, 1], "resolution": 99}, "2..64"),
        ("api/search", {"task": SMALL, "settings": {"kind": "es", "population": 5}}, "even"),
        ("api/decode", {"task": None, "point": [0, "x"]}, "a task is an object"),
        ("api/landscape", {"task": None, "bounds": [0, 1], "resolution": 8}, "a task is an object"),
    ],
)
def test_bad_requests_get_status_400_and_a_one_line_message(url, path, body, message):
    status, answer = _post(url, path, body)
    assert status == 400 and message in answer["error"], answer
    assert "Traceback" not in answer["error"] and "\n" not in answer["error"]


def test_a_task_index_out_of_range_is_a_message(url):
    with pytest.raises(urllib.error.HTTPError) as info:
        _get(url, "api/task/99")
    assert (
        info.value.code == 400
        and "task 99 does not exist" in json.loads(info.value.read())["error"]
    )


def test_a_taken_port_is_a_clear_os_error(explorer):
    port = free_port()
    with BackgroundServer(explorer, port=port):
        with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{port}.*another --port"):
            BackgroundServer(explorer, port=port)
