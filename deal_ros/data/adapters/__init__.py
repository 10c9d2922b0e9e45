"""Dataset adapters: every source yields :class:`deal_ros.data.sample.Sample`.

One module per source (imported when used, so reading VOC never imports rosbags):
``episodes`` (onboarding episodes), ``bag`` (any rosbag2 bag + a labels file), ``voc``,
``coco``, ``bop`` (BOP / HOPE), ``scene`` (the synthetic benchmark), ``folder`` (plain
images, for ``deal infer``). Build them from a spec string with
:func:`deal_ros.data.registry.build_dataset`; shared rules (class lists, errors, file
reading) live in :mod:`.base`.
"""
