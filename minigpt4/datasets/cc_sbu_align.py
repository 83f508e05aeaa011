"""``cc_sbu_align``: the official MiniGPT-4 stage-2 data (3,439 curated image descriptions) in its
download layout, ``<storage>/filter_cap.json`` + ``<storage>/image/<image_id>.jpg``.

As in the official code, each caption is the answer exactly as written (no text processor: case,
punctuation and length kept), one sample per image, an instruction drawn per sample."""

from __future__ import annotations

from torch.utils.data import Dataset

from minigpt4.config.schema import Key, ignored_key, only
from minigpt4.errors import DataError
from minigpt4.registry import DATASETS

from .builder import TRAIN_KEYS, VIS_KEY, CaptionBuilder, builder_key
from .records import CC_SBU_ANN, CC_SBU_IMAGE_DIR, read_cc_sbu_align

AS_WRITTEN = {"name": "caption_as_written"}


@DATASETS.register("cc_sbu_align")
class CCSBUAlignBuilder(CaptionBuilder):
    """The stage-2 training set: ``{"train": CaptionTrainDataset}``, one item per image.

    Items: ``image`` FloatTensor[3,S,S] (``vis_processor.train``), ``instruction_input`` str (drawn
    from ``prompt_path``), ``answer`` str (the caption as written), ``image_id`` str.
    """

    DEFAULT_CONFIG_PATH = "configs/datasets/cc_sbu_align/defaults.yaml"
    SCHEMA = {
        "builder": builder_key("cc_sbu_align"),
        "build_info": Key(
            "Where the data lives.",
            children={
                "storage": Key(
                    f"Folder holding {CC_SBU_ANN} and {CC_SBU_IMAGE_DIR}/ (the official cc_sbu_align download, unpacked).", str, path="dir"
                ),
            },
        ),
        "vis_processor": VIS_KEY,
        **{name: key for name, key in TRAIN_KEYS.items() if name != "caption_sampling"},  # one caption per image
        "text_processor": ignored_key(
            "the official CCSBUAlignDataset uses the captions as written and never calls its text processor; neither does this builder"
        ),
        "data_type": ignored_key("the official builders' data kind; images is the only one", str, only("images")),
    }

    def build_datasets(self) -> dict[str, Dataset]:
        storage = self.path("storage")
        ann, images = storage / CC_SBU_ANN, storage / CC_SBU_IMAGE_DIR
        for path, found in ((ann, ann.is_file()), (images, images.is_dir())):
            if not found:
                raise DataError(
                    f"{path}: not found; build_info.storage must be the cc_sbu_align folder, laid "
                    f'out as {storage}/{CC_SBU_ANN} ({{"annotations": [{{"image_id", "caption"}}, '
                    f"...]}}) and {storage}/{CC_SBU_IMAGE_DIR}/<image_id>.jpg"
                )
        # one caption per image (no caption_sampling key): one sample per image
        return {"train": self.train_dataset(read_cc_sbu_align(ann), str(ann), images, AS_WRITTEN)}
