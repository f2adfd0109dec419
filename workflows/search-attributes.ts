// Custom search attributes the project upserts; registered by the dev-server command.
// Pure data: safe in the workflow sandbox.
export const SEARCH_ATTRIBUTES = {
  DurableTrainStatus: 'Keyword',
  DurableTrainModel: 'Keyword',
  DurableTrainDataset: 'Keyword',
  DurableTrainStep: 'Int',
  DurableTrainBestAccuracy: 'Double',
} as const;
