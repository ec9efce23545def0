"""``minerguard investigate``'s reports: a MinerDetection in, text, JSON or one HTML page out.

The renderers (:mod:`.text`, :mod:`.json_report`, :mod:`.html`) are pure functions of the
detection model: they read no cluster and no file, so the unit tests render every case and the
CLI (:mod:`.cli`, the only module here that talks to the API) only fetches and picks one.
Everything a detection holds is attacker-influenced (pod names, command lines, image labels,
history ``created_by``): :mod:`.sections` makes each value inert once (control and bidi
characters shown as escapes, lengths bounded) and every renderer escapes for its own format.
"""
