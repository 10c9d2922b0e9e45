"""``deal demo``: the whole loop on the embedded default scene (no camera, no GPU, no download).

* :mod:`.pipeline` the phases in order, timed, logged, children cleaned up (``run_demo``);
* :mod:`.settings` the full and ``--quick`` presets; :mod:`.phases` phase names and logs;
* :mod:`.camera`   a scene-generator "camera" node on the RealSense topic names;
* :mod:`.takes`    the camera's takes and their ground truth (masks by header stamp);
* :mod:`.rosenv`   the private ROS environment the demo's processes share;
* :mod:`.children` child processes with logs, stopped on exit, Ctrl-C and failure;
* :mod:`.client`   the demo's own rclpy node: recorder services, camera control, status;
* :mod:`.record`   phase ``record``: one onboarding episode per class through the recorder;
* :mod:`.replay`   an episode replayed through the bag reader + codec, outputs collected;
* :mod:`.segment`  phase ``segment``: ``deal-segmenter`` on the replay;
* :mod:`.scoring`  mIoU against the generator's ground truth;
* :mod:`.summary`  phase ``report`` and the closing summary; :mod:`.report` the files.
"""
